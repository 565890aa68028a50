import { createRequire } from 'node:module'
import type { CronExpressionParser as CronParser } from 'cron-parser'
import ms from 'ms'
import { UsageError } from '../errors.js'
import type { Schedule, ScheduleTiming } from './types.js'

// cron-parser (and the luxon it pulls in) is required when a cron expression is first parsed,
// not when the CLI starts: `--help`, `job list` and interval jobs never need it (issue 11). It is
// CommonJS, so a synchronous require keeps these functions synchronous.
const require = createRequire(import.meta.url)
let cronParser: typeof CronParser | undefined
function cronParserModule(): typeof CronParser {
  return (cronParser ??= (require('cron-parser') as { CronExpressionParser: typeof CronParser }).CronExpressionParser)
}

/** The shortest interval we accept: `run --due` is driven by cron, whose resolution is a minute. */
export const MIN_INTERVAL_MS = 60_000

/**
 * How early an interval schedule counts as due. The replica datetime is the snapshot time, taken a
 * few seconds after the cron tick that started the pass; without a grace, a 1h job checked every
 * 15 minutes would slip to the next tick every time (10:00:07 → 11:15 → 12:30 …).
 */
export function intervalGraceMs(intervalMs: number): number {
  return Math.min(5 * 60_000, Math.floor(intervalMs / 10))
}

/**
 * Parses an interval such as `15m`, `1h`, `24h` or `7d` (the `ms` package's syntax; a bare number
 * is milliseconds and therefore refused as shorter than a minute).
 * @throws UsageError `INVALID_INTERVAL`
 */
export function parseInterval(text: string): Extract<ScheduleTiming, { kind: 'interval' }> {
  const trimmed = text.trim()
  const value = trimmed === '' ? undefined : (ms(trimmed as ms.StringValue) as number | undefined)
  if (value === undefined || !Number.isFinite(value)) {
    throw new UsageError('INVALID_INTERVAL', `interval "${text}" is not a duration; use e.g. 15m, 1h, 24h`)
  }
  if (value < MIN_INTERVAL_MS) {
    throw new UsageError('INVALID_INTERVAL', `interval "${text}" is shorter than one minute; use e.g. 15m, 1h, 24h`)
  }
  return { kind: 'interval', interval: trimmed, intervalMs: value }
}

/**
 * Parses a 5-field crontab expression (or a macro such as `@daily`).
 * @throws UsageError `INVALID_CRON`
 */
export function parseCron(expression: string): Extract<ScheduleTiming, { kind: 'cron' }> {
  const trimmed = expression.trim()
  try {
    if (trimmed === '') throw new Error('empty expression')
    // the crontab we print runs it, and crontab has no seconds field
    if (!trimmed.startsWith('@') && trimmed.split(/\s+/).length !== 5)
      throw new Error('use the 5 crontab fields: minute hour day month weekday')
    cronParserModule().parse(trimmed, { strict: false })
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    throw new UsageError(
      'INVALID_CRON',
      `cron expression "${expression}" is invalid (${reason}); use e.g. "0 * * * *"`,
      {
        cause: error,
      },
    )
  }
  return { kind: 'cron', cron: trimmed }
}

/** Options for cron evaluation; cron fields are read in `tz` (default: the process's local zone, like cron itself). */
export interface ScheduleOptions {
  tz?: string
}

function cronOptions(currentDate: Date, options: ScheduleOptions): Parameters<typeof CronParser.parse>[1] {
  return options.tz === undefined ? { currentDate } : { currentDate, tz: options.tz }
}

/** The newest cron occurrence at or before `now`. */
function lastCronOccurrence(cron: string, now: Date, options: ScheduleOptions): Date {
  // prev() is strictly before currentDate; one millisecond later makes an occurrence at `now` count.
  return cronParserModule()
    .parse(cron, cronOptions(new Date(now.getTime() + 1), options))
    .prev()
    .toDate()
}

function nextCronOccurrence(cron: string, after: Date, options: ScheduleOptions): Date {
  return cronParserModule().parse(cron, cronOptions(after, options)).next().toDate()
}

/**
 * Whether a schedule should run now, judged from the datetime of its newest replica (undefined
 * when there is none, which is always due). Interval: `now ≥ last + interval − grace`. Cron: a
 * cron occurrence lies in `(last, now]`.
 */
export function isDue(
  schedule: Schedule | ScheduleTiming,
  lastReplicaDate: Date | undefined,
  now: Date,
  options: ScheduleOptions = {},
): boolean {
  if (lastReplicaDate === undefined) return true
  const timing = 'timing' in schedule ? schedule.timing : schedule
  if (timing.kind === 'interval') return now.getTime() >= fallsDueMs(timing.intervalMs, lastReplicaDate)
  return lastCronOccurrence(timing.cron, now, options).getTime() > lastReplicaDate.getTime()
}

/** When an interval schedule whose newest replica is dated `last` falls due: `last + interval − grace`. */
function fallsDueMs(intervalMs: number, last: Date): number {
  return last.getTime() + intervalMs - intervalGraceMs(intervalMs)
}

/**
 * When the round `run --due` finds due at `now` began: a replication by the schedule from then
 * on is that round's, whichever controller made it (several controllers started by the same
 * cron line do not all start at once). Interval: when the stalest replica fell due
 * (`last + interval − grace`), or with none the grace before `now` (no more: replicas the
 * operator removed must not read as made); cron: the latest occurrence at or before `now`. The
 * previous round's replications lie before it as long as a round takes less than the period.
 */
export function dueSince(
  schedule: Schedule | ScheduleTiming,
  lastReplicaDate: Date | undefined,
  now: Date,
  options: ScheduleOptions = {},
): Date {
  const timing = 'timing' in schedule ? schedule.timing : schedule
  if (timing.kind === 'cron') return lastCronOccurrence(timing.cron, now, options)
  const since =
    lastReplicaDate === undefined
      ? now.getTime() - intervalGraceMs(timing.intervalMs)
      : fallsDueMs(timing.intervalMs, lastReplicaDate)
  return new Date(Math.min(since, now.getTime()))
}

/** The earliest time at or after `now` when {@link isDue} holds: `now` itself when it is due already. */
export function nextRun(
  schedule: Schedule | ScheduleTiming,
  lastReplicaDate: Date | undefined,
  now: Date,
  options: ScheduleOptions = {},
): Date {
  if (isDue(schedule, lastReplicaDate, now, options)) return now
  const timing = 'timing' in schedule ? schedule.timing : schedule
  if (timing.kind === 'interval') {
    // not due, so lastReplicaDate is defined and this lies after now
    return new Date(fallsDueMs(timing.intervalMs, lastReplicaDate ?? now))
  }
  return nextCronOccurrence(timing.cron, now, options)
}

/**
 * The schedule's nominal period, used as the RPO: the interval, or for cron the gap between the
 * next two occurrences after `now`.
 */
export function schedulePeriodMs(timing: ScheduleTiming, now: Date, options: ScheduleOptions = {}): number {
  if (timing.kind === 'interval') return timing.intervalMs
  const expression = cronParserModule().parse(timing.cron, cronOptions(now, options))
  const first = expression.next().toDate().getTime()
  const second = expression.next().toDate().getTime()
  return second - first
}

/** `every 1h` or `cron "0 * * * *"`, for humans. */
export function describeTiming(timing: ScheduleTiming): string {
  return timing.kind === 'interval' ? `every ${timing.interval}` : `cron "${timing.cron}"`
}
