import type { ChalkInstance } from 'chalk'

/**
 * What an event is, which decides where it goes and whether --quiet hides it:
 * `result` is the data the command was asked for (stdout, never timestamped, kept by --quiet);
 * `progress` and `info` go to stdout and are hidden by --quiet; `debug` needs --verbose;
 * `warning` and `error` go to stderr (error survives --quiet).
 */
export type EventClass = 'result' | 'progress' | 'info' | 'debug' | 'warning' | 'error'

export interface Formatter<E> {
  readonly class: EventClass | ((event: E) => EventClass)
  /** the lines to show; `style` is chalk with colours on or off */
  format(event: E, style: ChalkInstance): readonly string[]
  /**
   * Live progress: the event updates (or, with `ends`, finishes) the progress line `key`. On a
   * TTY that line is a spinner; in plain mode an update is printed only when `milestone` changes,
   * so a long transfer gives a line per 10 % rather than one per chunk.
   */
  readonly live?: {
    key(event: E): string
    readonly ends?: boolean
    milestone?(event: E): number
  }
}

/** One formatter per kind of the event union `E`: a missing kind does not compile. */
export type FormattersOf<E extends { readonly kind: string }> = {
  readonly [K in E['kind']]: Formatter<Extract<E, { kind: K }>>
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, cell.length)))
  return rows.map(row =>
    row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0))).join('  '),
  )
}
