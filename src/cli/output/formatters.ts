import type { ChalkInstance } from 'chalk'
import { describeTiming } from '../../jobs/schedule.js'
import { formatBytes, formatRate } from '../../jobs/rate.js'
import type { Job } from '../../jobs/types.js'
import type { OutputEvent, OutputEventKind, OutputEventOf } from './events.js'
import { formatConfigShow, formatPoolCheck } from '../config.js'
import { formatReplicaList } from '../list.js'
import { formatPassPlan } from '../run.js'
import { seedFormatters } from '../seed-output.js'

/**
 * What an event is, which decides where it goes and whether --quiet hides it:
 * `result` is the data the command was asked for (stdout, never timestamped, kept by --quiet);
 * `progress` and `info` go to stdout and are hidden by --quiet; `debug` needs --verbose;
 * `warning` and `error` go to stderr (error survives --quiet).
 */
export type EventClass = 'result' | 'progress' | 'info' | 'debug' | 'warning' | 'error'

export interface Formatter<E> {
  readonly class: EventClass | ((event: E) => EventClass)
  /** the lines to show; `style` is chalk with colours on or off */
  format(event: E, style: ChalkInstance): readonly string[]
  /**
   * Live progress: the event updates (or, with `ends`, finishes) the progress line `key`. On a
   * TTY that line is a spinner; in plain mode an update is printed only when `milestone` changes,
   * so a long transfer gives a line per 10 % rather than one per chunk.
   */
  readonly live?: {
    key(event: E): string
    readonly ends?: boolean
    milestone?(event: E): number
  }
}

export type Formatters = { readonly [K in OutputEventKind]: Formatter<OutputEventOf<K>> }

function formatDuration(milliseconds: number): string {
  const seconds = Math.round(milliseconds / 1000)
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`
}

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
  lines.push(`crontab: ${crontab}`)
  return lines
}

function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, cell.length)))
  return rows.map(row =>
    row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0))).join('  '),
  )
}

/** One formatter per event kind; the type makes a missing kind a compile error. */
export const formatters: Formatters = {
  info: { class: 'info', format: event => [event.message] },
  debug: { class: 'debug', format: (event, style) => [style.dim(event.message)] },
  warning: {
    class: 'warning',
    format: (event, style) => [
      `${style.yellow('warning')} ${event.vm === undefined ? '' : `${event.vm.name}: `}${event.message} [${event.code}]`,
    ],
  },
  error: {
    class: 'error',
    format: (event, style) => [
      `${style.red('error')} ${event.message} [${event.code}]`,
      ...(event.stack === undefined ? [] : [style.dim(event.stack)]),
    ],
  },

  'pass-start': {
    class: 'info',
    format: event => [
      `job "${event.job.name}": ${event.vms} VM${event.vms === 1 ? '' : 's'} (schedule ${event.scheduleId})`,
    ],
  },
  'vm-start': {
    class: 'progress',
    format: event => [
      `${event.vm.name}: ${event.plan.mode}${event.plan.base === undefined ? '' : ' from the previous replica'}`,
    ],
    live: { key: event => event.vm.uuid },
  },
  'disk-progress': {
    class: 'progress',
    format: event => [
      `${event.vm.name}: disk ${event.disk.userdevice} ${event.mode} ${formatBytes(event.bytes)}${
        event.virtualSize > 0 && event.mode === 'full'
          ? ` of ${formatBytes(event.virtualSize)} (${Math.floor((event.bytes / event.virtualSize) * 100)} %)`
          : ''
      }`,
    ],
    live: {
      key: event => event.vm.uuid,
      // a plain log gets a line per GiB sent per disk, not one per chunk
      milestone: event => Math.floor(event.bytes / 1024 ** 3) * 1000 + Number.parseInt(event.disk.userdevice, 10),
    },
  },
  'vm-done': {
    class: event => (event.result.status === 'success' ? 'info' : 'error'),
    format: (event, style) =>
      event.result.status === 'success'
        ? [
            `${style.green('✓')} ${event.result.vm.name}: ${event.result.mode}, ${formatBytes(event.result.bytes)} sent in ${formatDuration(event.result.durationMs)}`,
          ]
        : [`${style.red('✗')} ${event.result.vm.name}: ${event.result.error.message} [${event.result.error.code}]`],
    live: { key: event => event.result.vm.uuid, ends: true },
  },
  'pass-done': {
    class: 'result',
    format: (event, style) => {
      const failed = event.results.filter(result => result.status === 'failed').length
      const summary = `${event.results.length - failed} of ${event.results.length} VMs replicated`
      return [failed === 0 ? summary : `${summary}, ${style.red(`${failed} failed`)}`]
    },
  },

  // function declarations: safe through the formatters → command → context → output import cycle
  'pass-plan': { class: 'result', format: (event, style) => formatPassPlan(event, style) },
  'replica-list': { class: 'result', format: (event, style) => formatReplicaList(event, style) },

  'config-show': { class: 'result', format: (event, style) => formatConfigShow(event, style) },
  'pool-check': { class: 'result', format: (event, style) => formatPoolCheck(event, style) },

  'job-created': {
    class: 'result',
    format: (event, style) => [...jobDetails(event.job, event.crontab, style)],
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
  ...seedFormatters,
}

/** The class of this event (most kinds have a fixed one). */
export function classOf<E extends OutputEvent>(event: E): EventClass {
  const cls = formatterFor(event).class
  return typeof cls === 'function' ? cls(event) : cls
}

/** Dispatches to the formatter of the event's kind (the cast is the one place TS cannot correlate the union). */
export function formatterFor<E extends OutputEvent>(event: E): Formatter<E> {
  return formatters[event.kind] as unknown as Formatter<E>
}
