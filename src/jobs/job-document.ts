import { ConfigError, UsageError } from '../errors.js'
import { parseCron, parseInterval } from './schedule.js'
import { parseHealthCheckSetting } from './health-check-setting.js'
import type { Job, Schedule, ScheduleTiming, VmSelection } from './types.js'
import { isUuid } from './uuid.js'

export { UUID_PATTERN, isUuid } from './uuid.js'

/** The version written into the job store; a newer one is refused rather than half-understood. */
export const JOBS_DOCUMENT_VERSION = 1

/** The job store's JSON document. */
export interface JobsDocument {
  readonly version: typeof JOBS_DOCUMENT_VERSION
  readonly jobs: readonly Job[]
}

type Json = Record<string, unknown>

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Reads a job store document (possibly hand-edited) strictly: every refusal is a ConfigError
 * naming the file and the key, e.g. `jobs[1].schedules[0].interval`.
 */
export function parseJobsDocument(raw: unknown, file: string): JobsDocument {
  const fail = (key: string, problem: string): never => {
    throw new ConfigError(
      'JOBS_FILE_INVALID',
      `${file}: ${key === '' ? '(top level)' : key}: ${problem}; fix or restore the job store`,
      {
        file,
        key,
      },
    )
  }
  if (!isObject(raw)) return fail('', 'must be an object with "version" and "jobs"')
  if (raw['version'] !== JOBS_DOCUMENT_VERSION) {
    return fail(
      'version',
      `is ${JSON.stringify(raw['version'])}, this xen-cr reads version ${JOBS_DOCUMENT_VERSION}; upgrade xen-cr`,
    )
  }
  const rawJobs = raw['jobs']
  if (!Array.isArray(rawJobs)) return fail('jobs', 'must be an array')
  const jobs = rawJobs.map((rawJob: unknown, index) => parseJob(rawJob, `jobs[${index}]`, fail))
  const seen = new Set<string>()
  jobs.forEach((job, index) => {
    for (const handle of [job.id, job.name]) {
      if (seen.has(handle)) fail(`jobs[${index}]`, `id or name "${handle}" is used by another job`)
    }
    seen.add(job.id)
    seen.add(job.name)
  })
  return { version: JOBS_DOCUMENT_VERSION, jobs }
}

function parseJob(raw: unknown, key: string, fail: (key: string, problem: string) => never): Job {
  if (!isObject(raw)) return fail(key, 'must be an object')
  const string = (field: string, check?: (value: string) => boolean, hint = 'a non-empty string'): string => {
    const value = raw[field]
    if (typeof value !== 'string' || value === '' || (check !== undefined && !check(value)))
      return fail(`${key}.${field}`, `must be ${hint}`)
    return value
  }
  const integer = (field: string, min: number): number => {
    const value = raw[field]
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
      return fail(`${key}.${field}`, `must be an integer ≥ ${min}`)
    return value
  }
  const uuidList = (value: unknown, at: string): string[] => {
    if (!Array.isArray(value) || !value.every((item): item is string => typeof item === 'string' && isUuid(item))) {
      return fail(at, 'must be an array of uuids')
    }
    return value
  }

  const enabled = raw['enabled']
  if (typeof enabled !== 'boolean') fail(`${key}.enabled`, 'must be true or false')

  const rawVms = raw['vms']
  if (!isObject(rawVms)) return fail(`${key}.vms`, 'must be an object with uuids, tags and all')
  const tags = rawVms['tags']
  if (!Array.isArray(tags) || !tags.every((tag): tag is string => typeof tag === 'string' && tag !== '')) {
    return fail(`${key}.vms.tags`, 'must be an array of tags')
  }
  if (typeof rawVms['all'] !== 'boolean') fail(`${key}.vms.all`, 'must be true or false')
  const vms: VmSelection = { uuids: uuidList(rawVms['uuids'], `${key}.vms.uuids`), tags, all: rawVms['all'] === true }
  if (!vms.all && vms.uuids.length === 0 && vms.tags.length === 0)
    fail(`${key}.vms`, 'selects no VM: give uuids, tags or all')

  const rawSchedules = raw['schedules']
  if (!Array.isArray(rawSchedules) || rawSchedules.length === 0)
    return fail(`${key}.schedules`, 'must be a non-empty array')
  const schedules = rawSchedules.map((rawSchedule: unknown, index) =>
    parseSchedule(rawSchedule, `${key}.schedules[${index}]`, fail),
  )

  const rawMap = raw['networkMap'] ?? {}
  if (!isObject(rawMap))
    return fail(`${key}.networkMap`, 'must be an object of source network uuid → target network uuid')
  const networkMap: Record<string, string> = {}
  for (const [from, to] of Object.entries(rawMap)) {
    if (!isUuid(from) || typeof to !== 'string' || !isUuid(to))
      fail(`${key}.networkMap.${from}`, 'must map a network uuid to a network uuid')
    networkMap[from] = String(to)
  }

  const maxRate = raw['maxRate']
  if (maxRate !== undefined && (typeof maxRate !== 'number' || !Number.isSafeInteger(maxRate) || maxRate < 1)) {
    fail(`${key}.maxRate`, 'must be a positive integer (bytes per second)')
  }
  const createdAt = string('createdAt', value => !Number.isNaN(Date.parse(value)), 'an ISO 8601 date')
  const healthCheck = parseHealthCheckSetting(raw['healthCheck'], `${key}.healthCheck`, fail)

  return {
    id: string('id', isUuid, 'a uuid'),
    name: string('name'),
    enabled: enabled === true,
    source: string('source'),
    vms,
    target: string('target'),
    srs: uuidList(raw['srs'], `${key}.srs`),
    schedules,
    concurrency: integer('concurrency', 1),
    fullInterval: integer('fullInterval', 0),
    networkMap,
    ...(typeof maxRate === 'number' ? { maxRate } : {}),
    ...(healthCheck === undefined ? {} : { healthCheck }),
    createdAt,
  }
}

function parseSchedule(raw: unknown, key: string, fail: (key: string, problem: string) => never): Schedule {
  if (!isObject(raw)) return fail(key, 'must be an object')
  const id = raw['id']
  if (typeof id !== 'string' || !isUuid(id)) fail(`${key}.id`, 'must be a uuid')
  const retention = raw['retention']
  if (typeof retention !== 'number' || !Number.isSafeInteger(retention) || retention < 1)
    fail(`${key}.retention`, 'must be an integer ≥ 1')
  const timing = raw['timing']
  if (!isObject(timing))
    return fail(`${key}.timing`, 'must be {"kind":"interval","interval":"1h"} or {"kind":"cron","cron":"0 * * * *"}')
  let parsed: ScheduleTiming
  try {
    // intervalMs is recomputed from the text, so a hand edit of "interval" alone takes effect
    if (timing['kind'] === 'interval' && typeof timing['interval'] === 'string')
      parsed = parseInterval(timing['interval'])
    else if (timing['kind'] === 'cron' && typeof timing['cron'] === 'string') parsed = parseCron(timing['cron'])
    else
      return fail(`${key}.timing`, 'must be {"kind":"interval","interval":"1h"} or {"kind":"cron","cron":"0 * * * *"}')
  } catch (error) {
    if (error instanceof UsageError) return fail(`${key}.timing`, error.message)
    throw error
  }
  return { id: String(id), timing: parsed, retention: Number(retention) }
}
