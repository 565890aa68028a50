import { Writable } from 'node:stream'

/** A writable that keeps what was written, optionally pretending to be a terminal. */
export class CaptureStream extends Writable {
  readonly chunks: string[] = []
  readonly isTTY: boolean
  readonly columns: number

  constructor(options: { isTTY?: boolean; columns?: number } = {}) {
    super()
    this.isTTY = options.isTTY === true
    this.columns = options.columns ?? 100
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(chunk.toString())
    callback()
  }

  get text(): string {
    return this.chunks.join('')
  }

  get lines(): string[] {
    return this.text.split('\n').filter(line => line !== '')
  }

  // ora calls these on TTY streams
  cursorTo(): boolean {
    return true
  }

  clearLine(): boolean {
    return true
  }

  moveCursor(): boolean {
    return true
  }
}
