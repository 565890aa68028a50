import type { OutputEvent } from './events.js'

/** A writable terminal or pipe; `isTTY` is what a `tty.WriteStream` adds. */
export type OutputStream = NodeJS.WritableStream & { readonly isTTY?: boolean; readonly columns?: number }

/** Turns events into output: on a terminal, under a pipe, or as JSON lines. */
export interface Renderer {
  render(event: OutputEvent): void
  close(): void
}
