import { describe, expect, it } from 'vitest'
import { UsageError } from '../errors.js'
import {
  describeTiming,
  dueSince,
  intervalGraceMs,
  isDue,
  nextRun,
  parseCron,
  parseInterval,
  schedulePeriodMs,
} from './schedule.js'

const at = (iso: string) => new Date(iso)
const UTC = { tz: 'UTC' }

describe('parseInterval', () => {
  it('reads ms-style durations', () => {
    expect(parseInterval('15m')).toEqual({ kind: 'interval', interval: '15m', intervalMs: 900_000 })
    expect(parseInterval('1h').intervalMs).toBe(3_600_000)
    expect(parseInterval('24h').intervalMs).toBe(86_400_000)
    expect(parseInterval(' 7d ').intervalMs).toBe(604_800_000)
  })

  it.each(['', 'soon', '30s', '15', '-1h'])('refuses "%s" as a UsageError', text => {
    expect(() => parseInterval(text)).toThrow(UsageError)
  })
})

describe('parseCron', () => {
  it('accepts 5-field expressions and macros', () => {
    expect(parseCron('*/15 * * * *')).toEqual({ kind: 'cron', cron: '*/15 * * * *' })
    expect(parseCron('@daily').kind).toBe('cron')
  })

  it.each(['', 'bogus', '61 * * * *', '0 0 * * * *', '* * *'])('refuses "%s" naming the expression', text => {
    expect(() => parseCron(text)).toThrow(/cron expression/)
  })
})

describe('isDue and nextRun, interval', () => {
  const hourly = parseInterval('1h')

  it('is due with no replica yet', () => {
    expect(isDue(hourly, undefined, at('2026-01-01T10:00:00Z'))).toBe(true)
    expect(nextRun(hourly, undefined, at('2026-01-01T10:00:00Z'))).toEqual(at('2026-01-01T10:00:00Z'))
  })

  it('is due one interval after the last replica, less a small grace for the pass start-up', () => {
    const last = at('2026-01-01T10:00:07Z')
    expect(intervalGraceMs(3_600_000)).toBe(300_000)
    expect(isDue(hourly, last, at('2026-01-01T10:30:00Z'))).toBe(false)
    expect(isDue(hourly, last, at('2026-01-01T10:55:06Z'))).toBe(false)
    expect(isDue(hourly, last, at('2026-01-01T10:55:07Z'))).toBe(true)
    // the next cron tick at 11:00 runs it instead of slipping to 11:15
    expect(isDue(hourly, last, at('2026-01-01T11:00:00Z'))).toBe(true)
    expect(nextRun(hourly, last, at('2026-01-01T10:30:00Z'))).toEqual(at('2026-01-01T10:55:07Z'))
  })

  it('keeps the grace within a tenth of short intervals', () => {
    const quarter = parseInterval('15m')
    expect(isDue(quarter, at('2026-01-01T10:00:00Z'), at('2026-01-01T10:13:29Z'))).toBe(false)
    expect(isDue(quarter, at('2026-01-01T10:00:00Z'), at('2026-01-01T10:13:30Z'))).toBe(true)
  })
})

describe('isDue and nextRun, cron', () => {
  const sixHourly = parseCron('0 */6 * * *')

  it('is due when an occurrence lies after the last replica, up to and including now', () => {
    const last = at('2026-01-01T06:00:05Z')
    expect(isDue(sixHourly, last, at('2026-01-01T11:59:59Z'), UTC)).toBe(false)
    expect(isDue(sixHourly, last, at('2026-01-01T12:00:00Z'), UTC)).toBe(true)
    expect(isDue(sixHourly, last, at('2026-01-02T03:00:00Z'), UTC)).toBe(true)
    expect(nextRun(sixHourly, last, at('2026-01-01T07:00:00Z'), UTC)).toEqual(at('2026-01-01T12:00:00Z'))
    expect(nextRun(sixHourly, last, at('2026-01-01T12:00:00Z'), UTC)).toEqual(at('2026-01-01T12:00:00Z'))
  })

  it('reads the fields in the given time zone', () => {
    const twoAm = parseCron('0 2 * * *')
    const last = at('2026-01-01T00:30:00Z')
    expect(isDue(twoAm, last, at('2026-01-01T01:30:00Z'), { tz: 'Europe/Paris' })).toBe(true)
    expect(isDue(twoAm, last, at('2026-01-01T01:30:00Z'), UTC)).toBe(false)
  })
})

describe('dueSince: when the round due now began', () => {
  const hourly = parseInterval('1h')

  it('is, for an interval, when the stalest replica fell due, or the grace back with none', () => {
    const last = at('2026-01-01T10:00:07Z')
    // 11:00 runs it; the round began at 10:55:07 (due less the grace), after the last round's replicas
    expect(dueSince(hourly, last, at('2026-01-01T11:00:00Z'))).toEqual(at('2026-01-01T10:55:07Z'))
    expect(dueSince(hourly, undefined, at('2026-01-01T11:00:00Z'))).toEqual(at('2026-01-01T10:55:00Z'))
    // never after now
    expect(dueSince(hourly, last, at('2026-01-01T10:30:00Z'))).toEqual(at('2026-01-01T10:30:00Z'))
  })

  it('is, for cron, the latest occurrence at or before now, replica or not', () => {
    const sixHourly = parseCron('0 */6 * * *')
    const due = at('2026-01-01T12:00:00Z')
    expect(dueSince(sixHourly, at('2026-01-01T06:00:05Z'), at('2026-01-01T12:00:41Z'), UTC)).toEqual(due)
    expect(dueSince(sixHourly, undefined, at('2026-01-01T12:00:41Z'), UTC)).toEqual(due)
    expect(dueSince(sixHourly, undefined, due, UTC)).toEqual(due)
  })
})

describe('schedulePeriodMs and describeTiming', () => {
  it('gives the RPO of both kinds', () => {
    expect(schedulePeriodMs(parseInterval('24h'), new Date())).toBe(86_400_000)
    expect(schedulePeriodMs(parseCron('0 */6 * * *'), at('2026-01-01T07:00:00Z'), UTC)).toBe(6 * 3_600_000)
    expect(describeTiming(parseInterval('1h'))).toBe('every 1h')
    expect(describeTiming(parseCron('0 * * * *'))).toBe('cron "0 * * * *"')
  })
})
