import { describe, expect, it } from 'vitest'
import type { JobListing, ReplicaEntry, VmListing } from './list.js'
import { checkRpo, defaultToleranceMs } from './rpo-check.js'

const HOUR = 3_600_000
const MINUTE = 60_000

function entry(uuid: string, ageMs: number, complete = true): ReplicaEntry {
  return {
    uuid,
    name: `web - nightly - (${uuid})`,
    srUuid: 'sr-1',
    srName: 'Replica A',
    scheduleId: 'sch-1',
    datetime: complete ? '20260102T11:00:00Z' : undefined,
    ageMs: complete ? ageMs : undefined,
    chain: 'delta',
    complete,
  }
}

function vm(name: string, ageMs: number | undefined, replicas: ReplicaEntry[] = []): VmListing {
  return { vm: { uuid: `${name}-uuid`, name }, replicas, ageMs, status: 'ok' }
}

function listing(vms: VmListing[], rpoMs = HOUR): JobListing {
  return { job: { id: 'job-1', name: 'nightly', enabled: true }, rpoMs, vms }
}

describe('defaultToleranceMs', () => {
  it('is a tenth of the maximum age, at most 5 minutes', () => {
    expect(defaultToleranceMs(15 * MINUTE)).toBe(90_000)
    expect(defaultToleranceMs(HOUR)).toBe(5 * MINUTE)
    expect(defaultToleranceMs(24 * HOUR)).toBe(5 * MINUTE)
  })
})

describe('checkRpo', () => {
  it('judges each VM against the RPO plus the default tolerance', () => {
    const check = checkRpo(
      listing([
        vm('in-time', HOUR + 5 * MINUTE, [entry('r1', HOUR + 5 * MINUTE)]),
        vm('late', HOUR + 5 * MINUTE + 1, [entry('r2', HOUR + 5 * MINUTE + 1)]),
        vm('never', undefined, [entry('r3', 0, false)]),
      ]),
    )
    expect(check).toMatchObject({ rpoMs: HOUR, maxAgeMs: HOUR, toleranceMs: 5 * MINUTE })
    expect(check.vms.map(v => [v.vm.name, v.status])).toEqual([
      ['in-time', 'ok'],
      ['late', 'late'],
      ['never', 'never'],
    ])
    expect(check.vms[1]?.newest).toEqual({
      uuid: 'r2',
      name: 'web - nightly - (r2)',
      datetime: '20260102T11:00:00Z',
      srName: 'Replica A',
    })
    // an interrupted replica is not a replica to name
    expect(check.vms[2]?.newest).toBeUndefined()
    expect(check.vms[2]).not.toHaveProperty('ageMs')
  })

  it('takes --max-age instead of the RPO, with a tolerance derived from it unless given', () => {
    const vms = [vm('web', 3 * HOUR, [entry('r1', 3 * HOUR)])]
    expect(checkRpo(listing(vms), { maxAgeMs: 4 * HOUR }).vms[0]?.status).toBe('ok')
    expect(checkRpo(listing(vms), { maxAgeMs: 2 * HOUR })).toMatchObject({
      maxAgeMs: 2 * HOUR,
      toleranceMs: 5 * MINUTE,
      vms: [{ status: 'late' }],
    })
    expect(checkRpo(listing(vms), { maxAgeMs: 2 * HOUR, toleranceMs: HOUR }).vms[0]?.status).toBe('ok')
    expect(checkRpo(listing(vms, 3 * HOUR), { toleranceMs: 0 }).vms[0]?.status).toBe('ok')
    expect(checkRpo(listing(vms, 3 * HOUR - 1), { toleranceMs: 0 }).vms[0]?.status).toBe('late')
  })
})
