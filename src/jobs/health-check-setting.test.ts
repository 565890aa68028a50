import { describe, expect, it } from 'vitest'
import {
  buildHealthCheckSetting,
  healthCheckInputOf,
  mergeHealthCheckInput,
  parseHealthCheckSetting,
  parseHealthCheckTimeout,
} from './health-check-setting.js'

const SR = '5a1f0000-0000-4000-8000-0000000000a1'
const fail = (key: string, problem: string): never => {
  throw new Error(`${key}: ${problem}`)
}

describe('the health-check setting', () => {
  it('is off unless a flag asks for it; any flag turns it on with the defaults for the rest', () => {
    expect(buildHealthCheckSetting({})).toBeUndefined()
    expect(buildHealthCheckSetting({ enabled: true })).toEqual({ timeout: '10m', timeoutMs: 600_000, xenstore: false })
    expect(buildHealthCheckSetting({ timeout: '90s' })).toEqual({ timeout: '90s', timeoutMs: 90_000, xenstore: false })
    expect(buildHealthCheckSetting({ sr: SR.toUpperCase(), xenstore: true })).toEqual({
      sr: SR,
      timeout: '10m',
      timeoutMs: 600_000,
      xenstore: true,
    })
  })

  it('refuses a budget under a second or not a duration, an SR that is no uuid, and off with settings', () => {
    expect(parseHealthCheckTimeout('2s')).toEqual({ timeout: '2s', timeoutMs: 2_000 })
    for (const bad of ['', 'soon', '500', '0s'])
      expect(() => parseHealthCheckTimeout(bad)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }))
    expect(() => buildHealthCheckSetting({ sr: 'Replica A' })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION' }),
    )
    expect(() => buildHealthCheckSetting({ enabled: false, timeout: '5m' })).toThrow(
      expect.objectContaining({ code: 'CONFLICTING_OPTIONS' }),
    )
  })

  it('reads from a job store: absent is none, the budget is recomputed from its text, bad values name the key', () => {
    expect(parseHealthCheckSetting(undefined, 'jobs[0].healthCheck', fail)).toBeUndefined()
    expect(parseHealthCheckSetting({ timeout: '5m', sr: SR }, 'jobs[0].healthCheck', fail)).toEqual({
      sr: SR,
      timeout: '5m',
      timeoutMs: 300_000,
      xenstore: false,
    })
    expect(parseHealthCheckSetting({}, 'k', fail)).toEqual({ timeout: '10m', timeoutMs: 600_000, xenstore: false })
    expect(() => parseHealthCheckSetting({ timeout: 'later' }, 'k', fail)).toThrow(/^k\.timeout: /)
    expect(() => parseHealthCheckSetting({ sr: 'x' }, 'k', fail)).toThrow(/^k\.sr: must be a uuid/)
    expect(() => parseHealthCheckSetting({ xenstore: 'yes' }, 'k', fail)).toThrow(/^k\.xenstore: /)
    expect(() => parseHealthCheckSetting([], 'k', fail)).toThrow(/^k: must be an object/)
  })

  it('is edited flag by flag over the stored one, and dropped whole by --no-health-check', () => {
    const stored = buildHealthCheckSetting({ sr: SR, timeout: '5m', xenstore: true })!
    const merged = mergeHealthCheckInput(healthCheckInputOf(stored), { timeout: '1m' })
    expect(buildHealthCheckSetting(merged)).toEqual({ sr: SR, timeout: '1m', timeoutMs: 60_000, xenstore: true })
    expect(buildHealthCheckSetting(mergeHealthCheckInput(healthCheckInputOf(stored), { enabled: false }))).toBe(
      undefined,
    )
    expect(buildHealthCheckSetting(mergeHealthCheckInput(undefined, { xenstore: true }))).toEqual({
      timeout: '10m',
      timeoutMs: 600_000,
      xenstore: true,
    })
  })
})
