import { AbortedError, VhdError, isXenCrError } from '../errors.js'

/**
 * Exact-size reads from an async iterator of chunks of any size, tracking the absolute
 * position. It keeps at most the unread rest of one chunk, so memory is bounded by the largest
 * read plus one chunk.
 */
export class ByteReader {
  #position = 0
  #pending: Buffer | undefined
  #ended = false
  readonly #iterator: AsyncIterator<unknown>
  readonly #signal: AbortSignal | undefined

  constructor(iterator: AsyncIterator<unknown>, signal?: AbortSignal) {
    this.#iterator = iterator
    this.#signal = signal
  }

  /** Bytes consumed so far. */
  get position(): number {
    return this.#position
  }

  /** Exactly `length` bytes; a stream that ends first is a `VHD_TRUNCATED` error naming `what`. */
  async read(length: number, what: string): Promise<Buffer> {
    const out = await this.readUpTo(length)
    if (out.length < length) throw truncated(what, this.#position)
    return out
  }

  /** Up to `length` bytes: fewer only at the end of the stream. */
  async readUpTo(length: number): Promise<Buffer> {
    const first = await this.#chunk()
    if (first === undefined) return Buffer.alloc(0)
    if (first.length >= length) return this.#take(first, length)
    const out = Buffer.allocUnsafe(length)
    let done = 0
    for (;;) {
      const chunk = await this.#chunk()
      if (chunk === undefined) return out.subarray(0, done)
      const count = Math.min(chunk.length, length - done)
      chunk.copy(out, done, 0, count)
      this.#take(chunk, count)
      done += count
      if (done === length) return out
    }
  }

  /** Discards bytes up to absolute offset `target`, which must not be behind the position. */
  async skipTo(target: number, what: string): Promise<void> {
    while (this.#position < target) {
      const chunk = await this.#chunk()
      if (chunk === undefined) throw truncated(what, this.#position)
      this.#take(chunk, Math.min(chunk.length, target - this.#position))
    }
  }

  /**
   * Reads to the end of the stream keeping only its last `keep` bytes (fewer if the stream
   * had fewer left), and where they started.
   */
  async readTail(keep: number): Promise<{ tail: Buffer; offset: number }> {
    const tail = Buffer.alloc(keep)
    let held = 0
    for (;;) {
      const chunk = await this.#chunk()
      if (chunk === undefined) break
      this.#take(chunk, chunk.length)
      if (chunk.length >= keep) {
        chunk.copy(tail, 0, chunk.length - keep)
        held = keep
      } else {
        const stay = Math.min(held, keep - chunk.length)
        tail.copy(tail, 0, held - stay, held)
        chunk.copy(tail, stay)
        held = stay + chunk.length
      }
    }
    return { tail: tail.subarray(0, held), offset: this.#position - held }
  }

  /** The unread part of the current chunk, pulling the next chunk when it is used up. */
  async #chunk(): Promise<Buffer | undefined> {
    while (this.#pending === undefined || this.#pending.length === 0) {
      if (this.#ended) return undefined
      this.#checkAborted()
      let next: IteratorResult<unknown>
      try {
        next = await this.#iterator.next()
      } catch (error) {
        if (isXenCrError(error)) throw error
        this.#checkAborted()
        // a reset socket, a premature close: typed, with where in the VHD it happened
        const reason = error instanceof Error ? error.message : String(error)
        throw new VhdError('VHD_SOURCE_ERROR', `VHD source failed: ${reason}`, this.#position, { cause: error })
      }
      if (next.done === true) {
        this.#ended = true
        this.#pending = undefined
        return undefined
      }
      this.#pending = toBuffer(next.value)
    }
    return this.#pending
  }

  #checkAborted(): void {
    if (this.#signal?.aborted === true) throw new AbortedError('VHD stream aborted', { cause: this.#signal.reason })
  }

  #take(chunk: Buffer, count: number): Buffer {
    this.#position += count
    this.#pending = count === chunk.length ? undefined : chunk.subarray(count)
    return chunk.subarray(0, count)
  }
}

function toBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (typeof value === 'string') return Buffer.from(value, 'latin1')
  throw new TypeError('a VHD source must yield Buffers')
}

function truncated(what: string, offset: number): VhdError {
  return new VhdError('VHD_TRUNCATED', `VHD stream ended inside the ${what}`, offset)
}
