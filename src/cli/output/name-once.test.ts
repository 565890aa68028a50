import { describe, expect, it } from 'vitest'
import { toAscii } from './ascii.js'
import { nameOnce } from './name-once.js'

describe('nameOnce', () => {
  it('names the object once: not again when the message already does', () => {
    expect(nameOnce('job', 'slow', 'job "slow" is already running elsewhere; nothing done')).toBe(
      'job "slow" is already running elsewhere; nothing done',
    )
    expect(nameOnce('pool', 'source', 'pool "source": environment variable X is not set', 'pool source')).toBe(
      'pool "source": environment variable X is not set',
    )
    expect(nameOnce('job', 'slow', 'cannot reach https://h (ECONNREFUSED)')).toBe(
      'job "slow": cannot reach https://h (ECONNREFUSED)',
    )
    expect(nameOnce('pool', 'b', 'refused the user and password', 'pool b')).toBe(
      'pool b: refused the user and password',
    )
  })

  it('is not fooled by a longer name that starts the same', () => {
    expect(nameOnce('job', 'slow', 'job "slower" is already running')).toBe(
      'job "slow": job "slower" is already running',
    )
    expect(nameOnce('pool', 'a', 'pool a-2 is down', 'pool a')).toBe('pool a: pool a-2 is down')
  })
})

describe('toAscii', () => {
  it("turns xen-cr's own symbols into words and leaves names alone", () => {
    expect(toAscii('✓ web: 4 → 5 … ✗ — Café')).toBe('ok web: 4 -> 5 ... FAILED - Café')
  })
})
