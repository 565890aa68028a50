import { describe, expect, it } from 'vitest'
import { formatSpan } from './rpo-check-formatters.js'

describe('formatSpan', () => {
  it('gives a limit to the second, leaving out zeros only at the end', () => {
    expect([0, 12_000, 132_000, 3_600_000, 3_900_000, 3_605_000, 90_000_000].map(formatSpan)).toEqual([
      '0s',
      '12s',
      '2m12s',
      '1h',
      '1h05m',
      '1h00m05s',
      '1d01h',
    ])
  })
})
