/**
 * Exact-size reads from a stream, for a protocol whose messages have fixed headers and lengths:
 * `read(n)` resolves with exactly `n` bytes, or rejects at end of stream or on its error. The
 * stream is paused while more than what the pending read needs (and a small margin) is buffered,
 * so a client that floods the server is held back by TCP rather than by memory.
 * `detach()` gives the stream up (STARTTLS hands the socket over to TLS).
 */
import type { Duplex } from 'node:stream'

/** The stream ended or failed before a read was satisfied. */
export class StreamEnded extends Error {
  override get name(): string {
    return 'StreamEnded'
  }
}

const MARGIN = 256 * 1024

export class ByteReader {
  readonly #stream: Duplex
  #chunks: Buffer[] = []
  #buffered = 0
  #ended: Error | undefined
  #waiter: { n: number; resolve: (data: Buffer) => void; reject: (error: Error) => void } | undefined
  readonly #onData = (chunk: Buffer): void => {
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    this.#settle()
    if (this.#buffered > (this.#waiter?.n ?? 0) + MARGIN) this.#stream.pause()
  }
  readonly #onEnd = (): void => this.#end(new StreamEnded('the peer closed the connection'))
  readonly #onError = (error: Error): void => this.#end(error)

  constructor(stream: Duplex) {
    this.#stream = stream
    stream.on('data', this.#onData)
    stream.on('end', this.#onEnd)
    stream.on('close', this.#onEnd)
    stream.on('error', this.#onError)
  }

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.#buffered
  }

  read(n: number): Promise<Buffer> {
    if (this.#waiter !== undefined) return Promise.reject(new Error('ByteReader: one read at a time'))
    return new Promise((resolve, reject) => {
      this.#waiter = { n, resolve, reject }
      this.#settle()
      if (this.#waiter !== undefined) {
        if (this.#ended !== undefined) this.#fail(this.#ended)
        else this.#stream.resume()
      }
    })
  }

  /** Stops reading from the stream (which is left paused); unread bytes are dropped. */
  detach(): void {
    this.#stream.off('data', this.#onData)
    this.#stream.off('end', this.#onEnd)
    this.#stream.off('close', this.#onEnd)
    this.#stream.off('error', this.#onError)
    this.#stream.pause()
    this.#chunks = []
    this.#buffered = 0
  }

  #settle(): void {
    const waiter = this.#waiter
    if (waiter === undefined || this.#buffered < waiter.n) return
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks)
    this.#chunks = all.length > waiter.n ? [all.subarray(waiter.n)] : []
    this.#buffered = all.length - waiter.n
    this.#waiter = undefined
    waiter.resolve(all.subarray(0, waiter.n))
  }

  #end(error: Error): void {
    this.#ended ??= error
    if (this.#waiter !== undefined) this.#fail(this.#ended)
  }

  #fail(error: Error): void {
    const waiter = this.#waiter
    this.#waiter = undefined
    waiter?.reject(error)
  }
}
