import { describe, expect, it } from 'vitest'
import type { Job } from '../jobs/types.js'
import { buildListing, lastReplicaDates } from './list.js'
import { KEYS, PLACEHOLDER_DATETIME, START_BLOCKED_MESSAGE } from './metadata.js'

const job: Job = {
  id: 'job-1',
  name: 'nightly',
  enabled: true,
  source: 'src',
  vms: { uuids: ['vm-a', 'vm-b'], tags: [], all: false },
  target: 'tgt',
  srs: ['sr-1'],
  schedules: [{ id: 'sch-1', timing: { kind: 'interval', interval: '1h', intervalMs: 3_600_000 }, retention: 3 }],
  concurrency: 2,
  fullInterval: 0,
  networkMap: {},
  createdAt: '2026-01-01T00:00:00.000Z',
}

const now = new Date(Date.UTC(2026, 0, 2, 12, 0, 0))
const blocked = { start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE }

function vm(uuid: string, name: string, fields: Record<string, unknown> = {}) {
  return {
    uuid,
    name_label: name,
    is_a_snapshot: false,
    is_a_template: false,
    is_control_domain: false,
    power_state: 'Halted',
    snapshot_of: 'OpaqueRef:NULL',
    other_config: {},
    blocked_operations: {},
    VBDs: [],
    tags: [],
    ...fields,
  }
}

function replica(uuid: string, vmUuid: string, datetime: string, chain?: string, extra: Record<string, string> = {}) {
  return vm(uuid, `${vmUuid === 'vm-a' ? 'web' : 'db'} - nightly - (x)`, {
    blocked_operations: blocked,
    other_config: {
      [KEYS.job]: 'job-1',
      [KEYS.schedule]: 'sch-1',
      [KEYS.vm]: vmUuid,
      [KEYS.sr]: 'sr-1',
      [KEYS.datetime]: datetime,
      ...(chain === undefined ? {} : { [KEYS.deltaChainLength]: chain }),
      ...extra,
    },
  })
}

const targetVms = new Map([
  ['r1', replica('r1', 'vm-a', '20260102T11:30:00Z', '1')],
  ['r2', replica('r2', 'vm-a', '20260102T10:30:00Z', '0')],
  ['r3', replica('r3', 'vm-a', PLACEHOLDER_DATETIME)],
  ['r4', replica('r4', 'vm-b', '20260101T09:00:00Z')],
  // a clone of a replica (start no longer blocked) is not a replica
  ['c1', { ...replica('c1', 'vm-b', '20260102T11:59:00Z'), blocked_operations: {} }],
  // another job's replica
  ['o1', replica('o1', 'vm-b', '20260102T11:59:00Z', '0', { [KEYS.job]: 'job-2', [KEYS.schedule]: 'sch-2' })],
])
const targetSrs = new Map([['sr-ref', { uuid: 'sr-1', name_label: 'Replica storage' }]])

describe('buildListing', () => {
  it("lists each VM's replicas newest first with age, chain kind and status against the RPO", () => {
    const sourceVms = new Map([
      ['a', vm('vm-a', 'web')],
      ['b', vm('vm-b', 'db')],
      ['n', vm('vm-new', 'new', { tags: [] })],
    ])
    const listing = buildListing({
      job: { ...job, vms: { ...job.vms, uuids: ['vm-a', 'vm-b', 'vm-new'] } },
      targetVms,
      targetSrs,
      sourceVms,
      now,
    })
    expect(listing.rpoMs).toBe(3_600_000)
    const [db, nw, web] = listing.vms
    expect(web?.vm).toEqual({ uuid: 'vm-a', name: 'web' })
    expect(web?.replicas.map(r => [r.uuid, r.chain, r.complete])).toEqual([
      ['r1', 'delta', true],
      ['r2', 'full', true],
      ['r3', 'unknown', false],
    ])
    expect(web?.ageMs).toBe(30 * 60_000)
    expect(web?.status).toBe('ok')
    expect(web?.replicas[0]?.srName).toBe('Replica storage')
    expect(db?.replicas.map(r => r.uuid)).toEqual(['r4'])
    expect(db?.status).toBe('late')
    expect(nw).toMatchObject({ vm: { uuid: 'vm-new', name: 'new' }, replicas: [], status: 'never' })
  })

  it('names VMs from their replicas when the source is not read', () => {
    const listing = buildListing({ job, targetVms, targetSrs, now })
    expect(listing.vms.map(v => v.vm.name)).toEqual(['db', 'web'])
  })
})

describe('lastReplicaDates', () => {
  it("is the stalest VM's newest complete replica of the schedule", () => {
    expect(lastReplicaDates(job, targetVms).get('sch-1')?.toISOString()).toBe('2026-01-01T09:00:00.000Z')
  })

  it('is undefined when the schedule has no complete replica', () => {
    expect(
      lastReplicaDates(job, new Map([['r3', replica('r3', 'vm-a', PLACEHOLDER_DATETIME)]])).get('sch-1'),
    ).toBeUndefined()
  })
})
