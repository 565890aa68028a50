import type { ChalkInstance } from 'chalk'

/**
 * What an event is, which decides where it goes and whether --quiet hides it:
 * `result` is the data the command was asked for (stdout, never timestamped so scripts can parse
 * it, kept by --quiet); `outcome` is how a piece of work ended (a VM replicated, a pass or a seed
 * done: stdout, timestamped in a log like the progress that led to it, kept by --quiet);
 * `progress` and `info` go to stdout and are hidden by --quiet; `debug` needs --verbose;
 * `warning` and `error` go to stderr (error survives --quiet).
 */
export type EventClass = 'result' | 'outcome' | 'progress' | 'info' | 'debug' | 'warning' | 'error'

/** Where the lines go, for the few formatters that lay out differently on a terminal and in a log. */
export interface FormatContext {
  /** a terminal (colours, bars, boxed tables) or a log (plain timestamped ASCII lines) */
  readonly medium: 'tty' | 'plain'
  /** --quiet: per-VM results and failures only */
  readonly quiet: boolean
}

/** A transfer's state, drawn as a bar on a terminal. */
export interface TransferState {
  /** what is sent, e.g. `web-01 disk 0 full` */
  readonly label: string
  readonly bytes: number
  /** the exact byte count to send, once known (never a disk's virtual size) */
  readonly total?: number
  /** a word on the finished transfer, e.g. why a delta is a few KiB */
  readonly note?: string
}

export interface Formatter<E> {
  readonly class: EventClass | ((event: E) => EventClass)
  /** the lines to show; `style` is chalk with colours on or off */
  format(event: E, style: ChalkInstance, context: FormatContext): readonly string[]
  /**
   * Live progress: the event updates (or, with `ends`, finishes) the progress line `key`, and
   * every line whose key starts with `key/` (a VM's line ends its disks' too). On a TTY the line
   * is a bar when `transfer` describes one, else its text with a spinner. In a log an update is
   * printed when `milestone` changes or 30 s after the line's last one, so a long transfer gives
   * a line per 10 % rather than one per chunk.
   */
  readonly live?: {
    key(event: E): string
    readonly ends?: boolean
    milestone?(event: E): number
    transfer?(event: E): TransferState
  }
  /** the event closes a run's progress (a pass, a seed): every live line ends, a TTY's total too */
  readonly closesProgress?: boolean
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
    row
      .map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0)))
      .join('  ')
      // a row whose last cells are empty would end in padding
      .trimEnd(),
  )
}
