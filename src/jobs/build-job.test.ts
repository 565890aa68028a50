import { describe, expect, it } from 'vitest'
import { UsageError } from '../errors.js'
import { buildJob, type NewJobInput } from './build-job.js'

const defaults = { retention: 3, concurrency: 4, fullInterval: 10 }
const NOW = new Date('2026-01-01T00:00:00Z')
const VM = '0a1b2c3d-0000-4000-8000-000000000001'
const SR = '0a1b2c3d-0000-4000-8000-000000000002'
const NET_A = '0a1b2c3d-0000-4000-8000-000000000003'
const NET_B = '0a1b2c3d-0000-4000-8000-000000000004'
const base: NewJobInput = { name: 'n', source: 's', target: 't', vms: [VM], interval: '1h' }

function usage(input: NewJobInput): UsageError {
  try {
    buildJob(input, defaults, NOW)
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError)
    return error as UsageError
  }
  throw new Error('expected a UsageError')
}

describe('buildJob', () => {
  it('fills defaults from the config and makes fresh ids', () => {
    const job = buildJob(base, defaults, NOW)
    expect(job).toMatchObject({
      name: 'n',
      enabled: true,
      source: 's',
      target: 't',
      vms: { uuids: [VM], tags: [], all: false },
      srs: [],
      concurrency: 4,
      fullInterval: 10,
      networkMap: {},
      createdAt: NOW.toISOString(),
    })
    expect(job.schedules).toHaveLength(1)
    expect(job.schedules[0]?.retention).toBe(3)
    expect(job.id).not.toBe(job.schedules[0]?.id)
    expect('maxRate' in job).toBe(false)
  })

  it('adopts given ids and takes every flag', () => {
    const job = buildJob(
      {
        ...base,
        id: VM.toUpperCase(),
        scheduleId: SR,
        srs: [SR, SR],
        tags: ['cr'],
        cron: undefined,
        retention: '5',
        concurrency: 1,
        fullInterval: '0',
        networkMap: [`${NET_A}=${NET_B}`],
        maxRate: '50M',
        disabled: true,
      },
      defaults,
      NOW,
    )
    expect(job.id).toBe(VM)
    expect(job.schedules[0]).toMatchObject({ id: SR, retention: 5 })
    expect(job.srs).toEqual([SR])
    expect(job.vms.tags).toEqual(['cr'])
    expect(job.networkMap).toEqual({ [NET_A]: NET_B })
    expect(job.maxRate).toBe(50 * 1024 * 1024)
    expect(job.enabled).toBe(false)
    expect(job.concurrency).toBe(1)
    expect(job.fullInterval).toBe(0)
  })

  it.each<[string, NewJobInput, string]>([
    ['no name', { ...base, name: undefined }, 'MISSING_OPTION'],
    ['a uuid as name', { ...base, name: VM }, 'INVALID_OPTION'],
    ['no source', { ...base, source: '' }, 'MISSING_OPTION'],
    ['no target', { ...base, target: undefined }, 'MISSING_OPTION'],
    ['no VM selection', { ...base, vms: [] }, 'MISSING_OPTION'],
    ['--all-vms with --vm', { ...base, allVms: true }, 'CONFLICTING_OPTIONS'],
    ['a bad VM uuid', { ...base, vms: ['web'] }, 'INVALID_OPTION'],
    ['a bad SR uuid', { ...base, srs: ['local'] }, 'INVALID_OPTION'],
    ['no schedule', { ...base, interval: undefined }, 'MISSING_OPTION'],
    ['both schedules', { ...base, cron: '0 * * * *' }, 'CONFLICTING_OPTIONS'],
    ['a bad interval', { ...base, interval: 'often' }, 'INVALID_INTERVAL'],
    ['a bad cron', { ...base, interval: undefined, cron: '* *' }, 'INVALID_CRON'],
    ['retention 0', { ...base, retention: '0' }, 'INVALID_OPTION'],
    ['concurrency 1.5', { ...base, concurrency: '1.5' }, 'INVALID_OPTION'],
    ['a bad network map', { ...base, networkMap: [`${NET_A}:${NET_B}`] }, 'INVALID_OPTION'],
    ['a network mapped twice', { ...base, networkMap: [`${NET_A}=${NET_B}`, `${NET_A}=${VM}`] }, 'CONFLICTING_OPTIONS'],
    ['a bad rate', { ...base, maxRate: 'fast' }, 'INVALID_RATE'],
    ['a bad --id', { ...base, id: 'x' }, 'INVALID_OPTION'],
  ])('refuses %s', (_label, input, code) => {
    expect(usage(input).code).toBe(code)
  })
})
