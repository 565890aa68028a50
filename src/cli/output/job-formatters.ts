import type { ChalkInstance } from 'chalk'
import { formatRate } from '../../jobs/rate.js'
import { describeTiming } from '../../jobs/schedule.js'
import type { Job } from '../../jobs/types.js'
import type { JobCommandEvent } from './events.js'
import { table, type FormattersOf } from './formatter.js'

function describeVms(job: Job): string {
  if (job.vms.all) return 'all VMs'
  const parts: string[] = []
  if (job.vms.uuids.length > 0) parts.push(`VMs ${job.vms.uuids.join(', ')}`)
  if (job.vms.tags.length > 0) parts.push(`tags ${job.vms.tags.map(tag => JSON.stringify(tag)).join(', ')}`)
  return parts.join(' + ')
}

function describeSchedules(job: Job): string {
  return job.schedules.map(schedule => `${describeTiming(schedule.timing)} keep ${schedule.retention}`).join('; ')
}

/** The `job show` / `job create` block: ids first and plain, one `key: value` per line, for scripts and the seed procedure. */
function jobDetails(job: Job, crontab: string, style: ChalkInstance): string[] {
  const lines = [
    `job id: ${job.id}`,
    ...job.schedules.map(schedule => `schedule id: ${schedule.id}`),
    `name: ${job.name}`,
    `enabled: ${job.enabled ? 'yes' : style.yellow('no')}`,
    `source: ${job.source} (${describeVms(job)})`,
    `target: ${job.target} (${job.srs.length === 0 ? 'default SR' : `SR ${job.srs.join(', ')}`})`,
    ...job.schedules.map(
      schedule => `schedule ${schedule.id}: ${describeTiming(schedule.timing)}, retention ${schedule.retention}`,
    ),
    `concurrency: ${job.concurrency}`,
    `full interval: ${job.fullInterval === 0 ? 'never forced' : `every ${job.fullInterval} passes`}`,
  ]
  const mappings = Object.entries(job.networkMap)
  if (mappings.length > 0) lines.push(`network map: ${mappings.map(([from, to]) => `${from}=${to}`).join(', ')}`)
  lines.push(`max rate: ${job.maxRate === undefined ? 'unlimited' : formatRate(job.maxRate)}`)
  const check = job.healthCheck
  if (check !== undefined)
    lines.push(
      `health check: after each pass, ${check.timeout} budget, ${check.sr === undefined ? 'clone beside the replica' : `on SR ${check.sr}`}${check.xenstore ? ', guest script verdict awaited' : ''}`,
    )
  lines.push(`crontab: ${crontab}`)
  return lines
}

/** `xen-cr job …`. */
export const jobFormatters: FormattersOf<JobCommandEvent> = {
  'job-created': {
    class: 'result',
    format: (event, style) => jobDetails(event.job, event.crontab, style),
  },
  'job-show': {
    class: 'result',
    format: (event, style) => jobDetails(event.job, event.crontab, style),
  },
  'job-list': {
    class: 'result',
    format: (event, style) =>
      event.jobs.length === 0
        ? ['no jobs; create one with: xen-cr job create --help']
        : table([
            ['ID', 'NAME', 'ENABLED', 'SOURCE', 'TARGET', 'SCHEDULES'],
            ...event.jobs.map(job => [
              job.id,
              job.name,
              job.enabled ? 'yes' : 'no',
              job.source,
              job.target,
              describeSchedules(job),
            ]),
          ]).map((line, index) => (index === 0 ? style.bold(line) : line)),
  },
  'job-deleted': { class: 'result', format: event => [`deleted job ${event.id} (${event.name})`] },
  'job-state': {
    class: 'result',
    format: event => [`${event.enabled ? 'enabled' : 'disabled'} job ${event.id} (${event.name})`],
  },
}
