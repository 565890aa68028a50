import { describe, expect, it } from 'vitest'
import { throttleProgress, type ByteProgress } from './progress-throttle.js'

function clocked() {
  let t = 0
  const seen: ByteProgress[] = []
  const report = throttleProgress(p => seen.push(p), { everyMs: 200, now: () => t })
  return { seen, report, tick: (ms: number) => (t += ms) }
}

describe('throttleProgress', () => {
  it('passes the first report, then at most one per interval, and always the last', () => {
    const { seen, report, tick } = clocked()
    // 100 reports 10 ms apart: 1 s of transfer
    for (let i = 1; i <= 100; i++) {
      report({ bytes: i, total: 100 })
      tick(10)
    }
    expect(seen.map(p => p.bytes)).toEqual([1, 21, 41, 61, 81, 100])
  })

  it('lets a final report through without a total, once', () => {
    const { seen, report, tick } = clocked()
    report({ bytes: 5 })
    tick(1)
    report({ bytes: 9 })
    report({ bytes: 9, total: 9 }, true)
    report({ bytes: 9, total: 9 }, true)
    expect(seen).toEqual([{ bytes: 5 }, { bytes: 9, total: 9 }])
  })
})
