import type { Job } from './types.js'

/** How cron should start xen-cr: absolute paths, because cron's PATH is `/usr/bin:/bin` and its cwd is $HOME. */
export interface CrontabCommand {
  /** the node binary (process.execPath) */
  readonly node: string
  /** bin/xen-cr.js */
  readonly script: string
  readonly configFile?: string
  readonly jobsFile?: string
}

const CHECK_STEPS = [15, 10, 5, 3, 2, 1]

/** How often `run --due` should look for an interval schedule: about four times per interval, at most every 15 minutes. */
export function checkEveryMinutes(intervalMs: number): number {
  const quarter = intervalMs / 60_000 / 4
  return CHECK_STEPS.find(step => step <= quarter) ?? 1
}

/**
 * Quotes for sh, then escapes `%`, which cron turns into a newline even inside quotes.
 */
export function crontabQuote(word: string): string {
  const quoted = /^[A-Za-z0-9_/.:=@+,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
  return quoted.replace(/%/g, '\\%')
}

/**
 * The crontab line that runs a job: `run --due` on the job's cron expression, or every few
 * minutes for an interval. `run --due` decides from the replicas in XAPI whether anything is due
 * and takes a lease per job, so overlapping cron runs are safe without flock, and one line
 * serves every job.
 */
export function crontabLine(job: Job, command: CrontabCommand): string {
  const schedule = job.schedules[0]
  const when =
    schedule === undefined || schedule.timing.kind === 'interval'
      ? `*/${checkEveryMinutes(schedule?.timing.kind === 'interval' ? schedule.timing.intervalMs : 3_600_000)} * * * *`
      : schedule.timing.cron
  const words = [command.node, command.script]
  if (command.configFile !== undefined) words.push('--config', command.configFile)
  if (command.jobsFile !== undefined) words.push('--jobs-file', command.jobsFile)
  words.push('run', '--due')
  return `${when} ${words.map(crontabQuote).join(' ')}`
}
