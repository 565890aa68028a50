import type { OutputEvent } from './events.js'
import type { OutputStream, Renderer } from './renderer.js'
import { EVENTS_SCHEMA_VERSION } from './schema-version.js'

export { PlainRenderer } from './plain-renderer.js'
export { TtyRenderer } from './tty-renderer.js'
export type { OutputStream, Renderer } from './renderer.js'

/**
 * `--json`: one JSON object per line (`docs/events.schema.json`), each stamped with `time` and
 * `schemaVersion`; errors on stderr, so a consumer reading stdout sees only the data it asked for
 * and a failure can be told apart by the stream as well as by the exit code.
 */
export class JsonRenderer implements Renderer {
  constructor(
    private readonly stdout: OutputStream,
    private readonly stderr: OutputStream,
    private readonly now: () => Date,
  ) {}

  render(event: OutputEvent): void {
    const stream = event.kind === 'error' ? this.stderr : this.stdout
    stream.write(
      `${JSON.stringify({ ...event, time: this.now().toISOString(), schemaVersion: EVENTS_SCHEMA_VERSION })}\n`,
    )
  }

  close(): void {}
}
