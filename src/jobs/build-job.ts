import { randomUUID } from 'node:crypto'
import { UsageError } from '../errors.js'
import { buildHealthCheckSetting, type HealthCheckInput } from './health-check-setting.js'
import { isUuid } from './job-document.js'
import { parseRate } from './rate.js'
import { parseCron, parseInterval } from './schedule.js'
import type { Job, ScheduleTiming } from './types.js'

/** What `job create` was given, as text where the user typed text. */
export interface NewJobInput {
  readonly name?: string | undefined
  readonly source?: string | undefined
  readonly target?: string | undefined
  readonly srs?: readonly string[] | undefined
  readonly vms?: readonly string[] | undefined
  readonly tags?: readonly string[] | undefined
  readonly allVms?: boolean | undefined
  readonly interval?: string | undefined
  readonly cron?: string | undefined
  readonly retention?: string | number | undefined
  readonly id?: string | undefined
  readonly scheduleId?: string | undefined
  readonly concurrency?: string | number | undefined
  readonly fullInterval?: string | number | undefined
  /** `SRC=DST` network uuid pairs */
  readonly networkMap?: readonly string[] | undefined
  readonly maxRate?: string | undefined
  readonly disabled?: boolean | undefined
  readonly healthCheck?: HealthCheckInput | undefined
}

export interface JobDefaults {
  readonly retention: number
  readonly concurrency: number
  readonly fullInterval: number
}

function integer(value: string | number | undefined, flag: string, min: number, fallback: number): number {
  if (value === undefined) return fallback
  const parsed = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(parsed) || parsed < min) {
    throw new UsageError('INVALID_OPTION', `${flag} must be an integer ≥ ${min}, got "${value}"`)
  }
  return parsed
}

function uuid(value: string, flag: string): string {
  if (!isUuid(value)) throw new UsageError('INVALID_OPTION', `${flag} must be a uuid, got "${value}"`)
  return value.toLowerCase()
}

function unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)]
}

/**
 * Builds a job from `job create` input, with fresh ids unless adopted (`id`, `scheduleId`) and
 * settings defaulted from the config. Checks only what needs no pool; the pools are checked by
 * `checkJob`.
 * @throws UsageError `MISSING_OPTION`, `CONFLICTING_OPTIONS`, `INVALID_OPTION`, `INVALID_INTERVAL`, `INVALID_CRON`, `INVALID_RATE`
 */
export function buildJob(input: NewJobInput, defaults: JobDefaults, now: Date): Job {
  const required = (value: string | undefined, flag: string): string => {
    if (value === undefined || value.trim() === '') throw new UsageError('MISSING_OPTION', `${flag} is required`)
    return value.trim()
  }
  const name = required(input.name, '--name')
  if (isUuid(name))
    throw new UsageError(
      'INVALID_OPTION',
      `--name "${name}" looks like a uuid, which would be confused with job ids; choose a name`,
    )
  const source = required(input.source, '--source')
  const target = required(input.target, '--target')

  const vms = unique((input.vms ?? []).map(value => uuid(value, '--vm')))
  const tags = unique((input.tags ?? []).map(tag => tag.trim()))
  if (tags.includes('')) throw new UsageError('INVALID_OPTION', '--tag must not be empty')
  const all = input.allVms === true
  if (all && (vms.length > 0 || tags.length > 0)) {
    throw new UsageError('CONFLICTING_OPTIONS', '--all-vms replicates every VM; do not combine it with --vm or --tag')
  }
  if (!all && vms.length === 0 && tags.length === 0) {
    throw new UsageError('MISSING_OPTION', 'choose the VMs: --vm UUID..., --tag TAG... or --all-vms')
  }

  if (input.interval !== undefined && input.cron !== undefined) {
    throw new UsageError('CONFLICTING_OPTIONS', 'give either --interval or --cron, not both')
  }
  let timing: ScheduleTiming
  if (input.interval !== undefined) timing = parseInterval(input.interval)
  else if (input.cron !== undefined) timing = parseCron(input.cron)
  else throw new UsageError('MISSING_OPTION', 'give the schedule: --interval 1h or --cron "0 * * * *"')

  const networkMap: Record<string, string> = {}
  for (const pair of input.networkMap ?? []) {
    const [from, to, extra] = pair.split('=')
    if (from === undefined || to === undefined || extra !== undefined || !isUuid(from.trim()) || !isUuid(to.trim())) {
      throw new UsageError(
        'INVALID_OPTION',
        `--network-map must be SOURCE_NETWORK_UUID=TARGET_NETWORK_UUID, got "${pair}"`,
      )
    }
    const key = from.trim().toLowerCase()
    if (networkMap[key] !== undefined && networkMap[key] !== to.trim().toLowerCase()) {
      throw new UsageError('CONFLICTING_OPTIONS', `--network-map maps source network ${key} twice`)
    }
    networkMap[key] = to.trim().toLowerCase()
  }

  const maxRate = input.maxRate === undefined ? undefined : parseRate(input.maxRate)
  const healthCheck = input.healthCheck === undefined ? undefined : buildHealthCheckSetting(input.healthCheck)
  return {
    id: input.id === undefined ? randomUUID() : uuid(input.id, '--id'),
    name,
    enabled: input.disabled !== true,
    source,
    vms: { uuids: vms, tags, all },
    target,
    srs: unique((input.srs ?? []).map(value => uuid(value, '--sr'))),
    schedules: [
      {
        id: input.scheduleId === undefined ? randomUUID() : uuid(input.scheduleId, '--schedule-id'),
        timing,
        retention: integer(input.retention, '--retention', 1, defaults.retention),
      },
    ],
    concurrency: integer(input.concurrency, '--concurrency', 1, defaults.concurrency),
    fullInterval: integer(input.fullInterval, '--full-interval', 0, defaults.fullInterval),
    networkMap,
    ...(maxRate === undefined ? {} : { maxRate }),
    ...(healthCheck === undefined ? {} : { healthCheck }),
    createdAt: now.toISOString(),
  }
}
