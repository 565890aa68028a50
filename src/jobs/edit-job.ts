/**
 * `job edit`: a job's definition with some settings changed, built by the same `buildJob` as
 * `job create` (so the same flags mean the same and are refused for the same reasons), then
 * checked against the pools by the caller with `checkJob`. Pure: no store, no pool.
 */
import { UsageError } from '../errors.js'
import { buildJob, type JobDefaults, type NewJobInput } from './build-job.js'
import { healthCheckInputOf, mergeHealthCheckInput } from './health-check-setting.js'
import { formatRate } from './rate.js'
import { describeTiming } from './schedule.js'
import type { Job } from './types.js'

/**
 * What `job edit` was given, as text where the user typed text; undefined leaves a setting as it
 * is. The ids cannot change: replicas and snapshots are keyed by them.
 */
export interface JobEditInput extends Omit<NewJobInput, 'id' | 'scheduleId' | 'disabled'> {
  readonly enabled?: boolean | undefined
}

/** Words that remove an optional setting: `--max-rate none`, `--network-map none`. */
const NONE = 'none'

/** The job as `job create` input, so that an edit goes through the same parsing as a creation. */
function inputOf(job: Job): NewJobInput {
  const schedule = job.schedules[0]
  const timing = schedule?.timing
  return {
    name: job.name,
    source: job.source,
    target: job.target,
    srs: job.srs,
    vms: job.vms.uuids,
    tags: job.vms.tags,
    allVms: job.vms.all,
    ...(timing?.kind === 'interval' ? { interval: timing.interval } : {}),
    ...(timing?.kind === 'cron' ? { cron: timing.cron } : {}),
    ...(schedule === undefined ? {} : { retention: schedule.retention, scheduleId: schedule.id }),
    id: job.id,
    concurrency: job.concurrency,
    fullInterval: job.fullInterval,
    networkMap: Object.entries(job.networkMap).map(([from, to]) => `${from}=${to}`),
    ...(job.maxRate === undefined ? {} : { maxRate: String(job.maxRate) }),
    disabled: !job.enabled,
  }
}

/** True when the edit sets nothing at all. */
export function isEmptyEdit(edit: JobEditInput): boolean {
  return Object.values(edit).every(value => value === undefined)
}

/**
 * The job with `edit` applied. A new VM selection (`vms`, `tags` or `allVms`) replaces the whole
 * selection; a new schedule (`interval` or `cron`) replaces the first schedule's timing; a new
 * target without `srs` means the new target's default SR (filled in by `checkJob`). Settings
 * `buildJob` does not know (added by later features) are kept as they are.
 * @throws UsageError as `buildJob` does, and `CONFLICTING_OPTIONS`
 */
export function applyJobEdit(job: Job, edit: JobEditInput, defaults: JobDefaults, now: Date): Job {
  if (edit.interval !== undefined && edit.cron !== undefined)
    throw new UsageError('CONFLICTING_OPTIONS', 'give either --interval or --cron, not both')
  const current = inputOf(job)
  const selection = edit.vms !== undefined || edit.tags !== undefined || edit.allVms !== undefined
  const schedule = edit.interval !== undefined || edit.cron !== undefined
  const retarget = edit.target !== undefined && edit.target !== job.target && edit.srs === undefined
  const merged: NewJobInput = {
    ...current,
    ...(edit.name === undefined ? {} : { name: edit.name }),
    ...(edit.source === undefined ? {} : { source: edit.source }),
    ...(edit.target === undefined ? {} : { target: edit.target }),
    srs: edit.srs ?? (retarget ? [] : current.srs),
    ...(selection ? { vms: edit.vms ?? [], tags: edit.tags ?? [], allVms: edit.allVms === true } : {}),
    ...(schedule ? { interval: edit.interval, cron: edit.cron } : {}),
    ...(edit.retention === undefined ? {} : { retention: edit.retention }),
    ...(edit.concurrency === undefined ? {} : { concurrency: edit.concurrency }),
    ...(edit.fullInterval === undefined ? {} : { fullInterval: edit.fullInterval }),
    ...(edit.networkMap === undefined
      ? {}
      : { networkMap: edit.networkMap.length === 1 && edit.networkMap[0] === NONE ? [] : edit.networkMap }),
    maxRate: edit.maxRate === undefined ? current.maxRate : edit.maxRate.trim() === NONE ? undefined : edit.maxRate,
    ...(edit.enabled === undefined ? {} : { disabled: !edit.enabled }),
    ...(edit.healthCheck === undefined
      ? {}
      : {
          healthCheck: mergeHealthCheckInput(
            job.healthCheck === undefined ? undefined : healthCheckInputOf(job.healthCheck),
            edit.healthCheck,
          ),
        }),
  }
  const built = buildJob(merged, defaults, now)
  const first = built.schedules[0]
  const { maxRate: _previousRate, ...rest } = job
  // the health check is rebuilt only when the edit touches it (off: `--no-health-check`)
  const { healthCheck: _previousCheck, ...withoutCheck } = rest
  const kept = edit.healthCheck === undefined ? rest : withoutCheck
  return {
    ...kept,
    ...built,
    // buildJob stamps a creation; the job was created when it was
    createdAt: job.createdAt,
    schedules: [...(first === undefined ? [] : [first]), ...job.schedules.slice(1)],
  }
}

export interface JobChange {
  readonly setting: string
  readonly from: string
  readonly to: string
}

function describeVms(job: Job): string {
  if (job.vms.all) return 'all VMs'
  const parts = [
    ...(job.vms.uuids.length === 0 ? [] : [`VMs ${job.vms.uuids.join(', ')}`]),
    ...(job.vms.tags.length === 0 ? [] : [`tags ${job.vms.tags.join(', ')}`]),
  ]
  return parts.join(' + ')
}

/** Each setting as a person reads it; a setting this list does not know is shown as JSON. */
const SETTINGS: Readonly<Record<string, (job: Job) => string>> = {
  name: job => job.name,
  enabled: job => (job.enabled ? 'yes' : 'no'),
  source: job => job.source,
  vms: describeVms,
  target: job => job.target,
  srs: job => job.srs.join(', '),
  schedules: job => job.schedules.map(s => `${describeTiming(s.timing)}, retention ${s.retention}`).join('; '),
  concurrency: job => String(job.concurrency),
  fullInterval: job => String(job.fullInterval),
  networkMap: job =>
    Object.entries(job.networkMap)
      .map(([from, to]) => `${from}=${to}`)
      .join(', ') || 'none',
  maxRate: job => (job.maxRate === undefined ? 'unlimited' : formatRate(job.maxRate)),
}

/** What differs between two versions of a job, setting by setting. */
export function jobChanges(before: Job, after: Job): JobChange[] {
  const keys = [...new Set([...Object.keys(SETTINGS), ...Object.keys(before), ...Object.keys(after)])].filter(
    key => key !== 'id' && key !== 'createdAt',
  )
  const show = (job: Job, key: string): string => {
    const describe = SETTINGS[key]
    if (describe !== undefined) return describe(job)
    const value: unknown = (job as unknown as Record<string, unknown>)[key]
    return value === undefined ? 'none' : JSON.stringify(value)
  }
  return keys.flatMap(setting => {
    const from = show(before, setting)
    const to = show(after, setting)
    return from === to ? [] : [{ setting, from, to }]
  })
}
