import type { Readable, Writable } from 'node:stream'

/**
 * Makes the chunks `source` passes to `dest` within one event-loop turn leave in one `writev`.
 *
 * A socket read is 64 KiB at most and each one reaches the request in a turn of its own, where
 * node's HTTP client uncorks the socket again before the next read: one system call, one write
 * request and one completion callback per 64 KiB. Here the first chunk of a turn corks `dest`
 * and the check phase (`setImmediate`, after every socket read of the turn) uncorks it, so the
 * turn's chunks go out together. Backpressure is unchanged: `dest.write()` still answers
 * `false` once the socket holds its high-water mark, the pipeline pauses `source`, and the
 * uncork flushes what waits. Call it in the same tick that pipes `source` into `dest`.
 */
export function writeInBatches(source: Readable, dest: Writable): void {
  let corked = false
  const uncork = (): void => {
    corked = false
    dest.uncork()
  }
  source.on('data', () => {
    if (corked) return
    corked = true
    dest.cork()
    setImmediate(uncork)
  })
}
