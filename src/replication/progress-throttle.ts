/**
 * Progress callbacks at most every `everyMs` per transfer. Byte-driven reports (one per MiB, or
 * one per chunk) reach thousands a second on a fast link; whatever renders them needs a few per
 * second, and a pass may run dozens of disks at once. The first report passes (it says the
 * transfer started, and with what total) and so does the last one (`bytes === total`, or
 * `final`), so a bar always ends where the transfer ended.
 */

/** Bytes so far and, once known, how many there are in all. */
export interface ByteProgress {
  readonly bytes: number
  readonly total?: number
}

export type ThrottledProgress<P extends ByteProgress = ByteProgress> = (progress: P, final?: boolean) => void

/** How often a transfer reports at most: five times a second is smooth for a bar and cheap for a log. */
export const PROGRESS_EVERY_MS = 200

export function throttleProgress<P extends ByteProgress>(
  report: (progress: P) => void,
  options: { everyMs?: number; now?: () => number } = {},
): ThrottledProgress<P> {
  const everyMs = options.everyMs ?? PROGRESS_EVERY_MS
  const now = options.now ?? Date.now
  let last: number | undefined
  let ended: number | undefined
  return (progress, final = false) => {
    const complete = final || (progress.total !== undefined && progress.bytes >= progress.total)
    const t = now()
    if (!complete && last !== undefined && t - last < everyMs) return
    // the end can be reported twice (the meter's flush, then the caller's own last word)
    if (complete && ended === progress.bytes) return
    last = t
    if (complete) ended = progress.bytes
    report(progress)
  }
}
