import type { OutputEvent } from './events.js'

export { PlainRenderer } from './plain-renderer.js'
export { TtyRenderer } from './tty-renderer.js'

/** A writable terminal or pipe; `isTTY` is what a `tty.WriteStream` adds. */
export type OutputStream = NodeJS.WritableStream & { readonly isTTY?: boolean; readonly columns?: number }

export interface Renderer {
  render(event: OutputEvent): void
  close(): void
}

/** `--json`: one JSON object per line on stdout, errors included, each stamped with `time`. */
export class JsonRenderer implements Renderer {
  constructor(
    private readonly stdout: OutputStream,
    private readonly now: () => Date,
  ) {}

  render(event: OutputEvent): void {
    this.stdout.write(`${JSON.stringify({ ...event, time: this.now().toISOString() })}\n`)
  }

  close(): void {}
}
