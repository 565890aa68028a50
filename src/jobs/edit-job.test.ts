import { describe, expect, it } from 'vitest'
import { applyJobEdit, isEmptyEdit, jobChanges } from './edit-job.js'
import type { Job } from './types.js'

const defaults = { retention: 1, concurrency: 2, fullInterval: 0 }
const NOW = new Date('2026-05-01T00:00:00.000Z')
const VM_A = '11111111-1111-4111-8111-111111111111'
const VM_B = '22222222-2222-4222-8222-222222222222'
const SR_1 = '33333333-3333-4333-8333-333333333333'
const SR_2 = '44444444-4444-4444-8444-444444444444'
const NET_S = '55555555-5555-4555-8555-555555555555'
const NET_T = '66666666-6666-4666-8666-666666666666'

const job: Job = {
  id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0001',
  name: 'nightly',
  enabled: true,
  source: 'src',
  vms: { uuids: [VM_A], tags: [], all: false },
  target: 'tgt',
  srs: [SR_1],
  schedules: [
    {
      id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0002',
      timing: { kind: 'interval', interval: '1h', intervalMs: 3_600_000 },
      retention: 2,
    },
  ],
  concurrency: 2,
  fullInterval: 0,
  networkMap: { [NET_S]: NET_T },
  maxRate: 52_428_800,
  createdAt: '2026-01-01T00:00:00.000Z',
}

describe('applyJobEdit', () => {
  it('changes only what is given and keeps the ids and the creation date', () => {
    const edited = applyJobEdit(job, { retention: '5', concurrency: 4 }, defaults, NOW)
    expect(edited).toEqual({
      ...job,
      schedules: [{ ...job.schedules[0], retention: 5 }],
      concurrency: 4,
    })
    expect(jobChanges(job, edited)).toEqual([
      { setting: 'schedules', from: 'every 1h, retention 2', to: 'every 1h, retention 5' },
      { setting: 'concurrency', from: '2', to: '4' },
    ])
  })

  it('replaces the whole VM selection and the schedule timing', () => {
    const edited = applyJobEdit(job, { tags: ['prod'], cron: '0 */6 * * *' }, defaults, NOW)
    expect(edited.vms).toEqual({ uuids: [], tags: ['prod'], all: false })
    expect(edited.schedules).toEqual([
      { id: job.schedules[0]!.id, timing: { kind: 'cron', cron: '0 */6 * * *' }, retention: 2 },
    ])
    expect(applyJobEdit(job, { allVms: true }, defaults, NOW).vms).toEqual({ uuids: [], tags: [], all: true })
    expect(applyJobEdit(job, { vms: [VM_B.toUpperCase()] }, defaults, NOW).vms.uuids).toEqual([VM_B])
  })

  it('takes the new target default SR when the target changes without --sr, and keeps the SRs otherwise', () => {
    expect(applyJobEdit(job, { target: 'dr' }, defaults, NOW).srs).toEqual([])
    expect(applyJobEdit(job, { target: 'dr', srs: [SR_2] }, defaults, NOW).srs).toEqual([SR_2])
    expect(applyJobEdit(job, { target: 'tgt' }, defaults, NOW).srs).toEqual([SR_1])
  })

  it('removes the rate limit and the network map with "none", and enables or disables', () => {
    const edited = applyJobEdit(job, { maxRate: 'none', networkMap: ['none'], enabled: false }, defaults, NOW)
    expect(edited).not.toHaveProperty('maxRate')
    expect(edited.networkMap).toEqual({})
    expect(edited.enabled).toBe(false)
    expect(jobChanges(job, edited)).toEqual([
      { setting: 'enabled', from: 'yes', to: 'no' },
      { setting: 'networkMap', from: `${NET_S}=${NET_T}`, to: 'none' },
      { setting: 'maxRate', from: '50 MiB/s', to: 'unlimited' },
    ])
    expect(applyJobEdit(job, { maxRate: '10M' }, defaults, NOW).maxRate).toBe(10 * 1024 * 1024)
  })

  it('refuses what job create refuses, with the same codes', () => {
    expect(() => applyJobEdit(job, { retention: '0' }, defaults, NOW)).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION' }),
    )
    expect(() => applyJobEdit(job, { interval: '30s' }, defaults, NOW)).toThrow(
      expect.objectContaining({ code: 'INVALID_INTERVAL' }),
    )
    expect(() => applyJobEdit(job, { interval: '1h', cron: '0 * * * *' }, defaults, NOW)).toThrow(
      expect.objectContaining({ code: 'CONFLICTING_OPTIONS' }),
    )
    expect(() => applyJobEdit(job, { allVms: true, tags: ['x'] }, defaults, NOW)).toThrow(
      expect.objectContaining({ code: 'CONFLICTING_OPTIONS' }),
    )
    expect(() => applyJobEdit(job, { name: VM_A }, defaults, NOW)).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION' }),
    )
    expect(() => applyJobEdit(job, { maxRate: 'fast' }, defaults, NOW)).toThrow(
      expect.objectContaining({ code: 'INVALID_RATE' }),
    )
  })

  it('keeps settings it does not know, and further schedules as they are', () => {
    const extended = {
      ...job,
      schedules: [...job.schedules, { ...job.schedules[0]!, id: 'second' }],
      healthCheck: { timeout: '10m' },
    } as unknown as Job
    const edited = applyJobEdit(extended, { name: 'hourly' }, defaults, NOW)
    expect(edited).toEqual({ ...extended, name: 'hourly' })
    expect(jobChanges(extended, { ...extended, healthCheck: undefined } as unknown as Job)).toEqual([
      { setting: 'healthCheck', from: '{"timeout":"10m"}', to: 'none' },
    ])
  })
})

describe('isEmptyEdit', () => {
  it('is true only when nothing is set', () => {
    expect(isEmptyEdit({})).toBe(true)
    expect(isEmptyEdit({ name: undefined })).toBe(true)
    expect(isEmptyEdit({ enabled: false })).toBe(false)
  })
})
