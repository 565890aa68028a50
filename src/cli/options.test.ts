/** The global timeout flags: seconds in, ms out; refused in one line naming the flag. */
import { describe, expect, it } from 'vitest'
import { timeoutOverrides } from './options.js'

describe('timeoutOverrides', () => {
  it('turns the flags given into ms and leaves the others to the config', () => {
    expect(timeoutOverrides({})).toEqual({})
    expect(timeoutOverrides({ connectTimeout: '2.5', runTimeout: '0' })).toEqual({ connectMs: 2_500, runMs: 0 })
    expect(timeoutOverrides({ callTimeout: '60', vmTimeout: '3600' })).toEqual({ callMs: 60_000, vmMs: 3_600_000 })
  })

  it.each([
    [{ connectTimeout: '0' }, '--connect-timeout 0'],
    [{ callTimeout: 'soon' }, '--call-timeout soon'],
    [{ vmTimeout: '-1' }, '--vm-timeout -1'],
    [{ runTimeout: '' }, '--run-timeout '],
  ])('refuses %j', (flags, start) => {
    expect(() => timeoutOverrides(flags)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }) as Error)
    expect(() => timeoutOverrides(flags)).toThrow(start)
  })
})
