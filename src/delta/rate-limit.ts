/**
 * A byte-rate limit shared by every stream of a job (the job's `maxRate`), applied as a
 * Transform so that a slow token bucket turns into ordinary stream backpressure: the chunk is
 * not passed on until the bucket allows it, so upstream stops being read.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'

export interface Clock {
  now(): number
  sleep(ms: number, signal?: AbortSignal): Promise<void>
}

const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) => sleep(ms, undefined, signal === undefined ? {} : { signal }),
}

/** A token bucket of `bytesPerSecond` with a burst of one second's worth. */
export class RateLimiter {
  readonly bytesPerSecond: number
  readonly #clock: Clock
  #available: number
  #last: number
  #queue: Promise<void> = Promise.resolve()

  constructor(bytesPerSecond: number, clock: Clock = realClock) {
    if (!(bytesPerSecond > 0)) throw new RangeError(`rate must be positive, got ${bytesPerSecond}`)
    this.bytesPerSecond = bytesPerSecond
    this.#clock = clock
    this.#available = bytesPerSecond
    this.#last = clock.now()
  }

  /** Resolves once `bytes` may be sent. Callers are served in order, so streams share fairly. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    const next = this.#queue.then(() => this.#wait(bytes, signal))
    this.#queue = next.catch(() => undefined)
    return next
  }

  async #wait(bytes: number, signal?: AbortSignal): Promise<void> {
    const now = this.#clock.now()
    this.#available = Math.min(this.bytesPerSecond, this.#available + ((now - this.#last) / 1000) * this.bytesPerSecond)
    this.#last = now
    this.#available -= bytes
    if (this.#available < 0) {
      const ms = (-this.#available / this.bytesPerSecond) * 1000
      await this.#clock.sleep(ms, signal)
    }
  }
}

/** A pass-through that waits for `limiter` before passing each chunk on. */
export function createRateLimitStream(limiter: RateLimiter, signal?: AbortSignal): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      limiter.take(chunk.length, signal).then(
        () => callback(null, chunk),
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      )
    },
  })
}
