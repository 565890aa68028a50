import { describe, expect, it } from 'vitest'
import { job, now, replica, srs } from '../../test/helpers/replica-records.js'
import { START_BLOCKED_MESSAGE } from '../replication/metadata.js'
import { DEFAULT_NAME_SUFFIX, parseAt, planFailover, type FailoverPlanInput } from './failover-plan.js'
import { groupJobReplicas, type ReplicaVmFields } from './job-replicas.js'

function input(vms: [string, ReplicaVmFields][], over: Partial<FailoverPlanInput> = {}): FailoverPlanInput {
  return {
    job,
    replicas: groupJobReplicas({ job, vms: new Map(vms), srs, now }),
    nameSuffix: DEFAULT_NAME_SUFFIX,
    targetVmNames: new Set(),
    ...over,
  }
}

const web = (uuid: string, datetime: string, over: Partial<ReplicaVmFields> = {}): [string, ReplicaVmFields] => [
  uuid,
  replica(uuid, 'web', 'vm-a', datetime, over),
]
const db = (uuid: string, datetime: string, over: Partial<ReplicaVmFields> = {}): [string, ReplicaVmFields] => [
  uuid,
  replica(uuid, 'db', 'vm-b', datetime, over),
]
const app = (uuid: string, datetime: string, over: Partial<ReplicaVmFields> = {}): [string, ReplicaVmFields] => [
  uuid,
  replica(uuid, 'app', 'vm-c', datetime, over),
]

describe('parseAt', () => {
  it('reads the XAPI form, the compact form of names and ISO 8601 (UTC unless a zone is given)', () => {
    const expected = Date.UTC(2026, 7, 21, 15, 31, 45)
    for (const value of [
      '20260821T15:31:45Z',
      '20260821T153145Z',
      '2026-08-21T15:31:45Z',
      '2026-08-21T15:31:45',
      '2026-08-21T17:31:45+02:00',
    ])
      expect(parseAt(value).getTime(), value).toBe(expected)
    expect(parseAt('2026-08-21').getTime()).toBe(Date.UTC(2026, 7, 21))
    for (const bad of ['yesterday', '2026-13-45T99:00:00Z', ''])
      expect(() => parseAt(bad), bad).toThrow(expect.objectContaining({ code: 'BAD_DATETIME' }) as Error)
  })
})

describe('planFailover', () => {
  it('takes the newest complete replica of each VM, or the newest at or before --at', () => {
    const vms = [
      web('w1', '20260821T12:00:00Z'),
      web('w2', '20260821T13:00:00Z'),
      db('d1', '20260821T12:30:00Z'),
      app('a1', '20260821T13:30:00Z'),
    ]
    const newest = planFailover(input(vms))
    expect(newest.entries.map(e => [e.vm.name, e.status === 'ready' ? [e.replica.uuid, e.name] : e.code])).toEqual([
      ['app', ['a1', 'app (failover)']],
      ['db', ['d1', 'db (failover)']],
      ['web', ['w2', 'web (failover)']],
    ])
    const at = planFailover(input(vms, { at: new Date(Date.UTC(2026, 7, 21, 12, 45)) }))
    expect(at.entries.map(e => [e.vm.name, e.status === 'ready' ? e.replica.uuid : e.code])).toEqual([
      ['app', 'NO_REPLICA_AT'],
      ['db', 'd1'],
      ['web', 'w1'],
    ])
    const exact = planFailover(input(vms, { at: new Date(Date.UTC(2026, 7, 21, 13)) }))
    expect(exact.entries.find(e => e.vm.name === 'web')).toMatchObject({ status: 'ready', replica: { uuid: 'w2' } })
  })

  it('refuses a VM without a replica, with only an interrupted one, whose replica was started, or already failed over', () => {
    const vms = [
      web('w1', '20260821T12:00:00Z'),
      web('w2', '20260821T13:00:00Z', { power_state: 'Running', blocked_operations: {} }),
      db('d1', '19700101T000000Z', { blocked_operations: { start: 'Importing…' } }),
    ]
    const plan = planFailover(input(vms))
    expect(plan.entries.map(e => [e.vm.name, e.status === 'refused' ? e.code : e.status])).toEqual([
      ['db', 'NO_COMPLETE_REPLICA'],
      ['vm-c', 'NO_REPLICA'],
      ['web', 'REPLICA_STARTED'],
    ])
    expect(plan.entries[2]).toMatchObject({ message: expect.stringContaining('--at 20260821T12:00:00Z') as string })
    expect(plan.groups).toEqual([])
    // unblocked but halted is started too: the pass no longer trusts it either
    const unblocked = planFailover(input([web('w3', '20260821T13:00:00Z', { blocked_operations: {} })]))
    expect(unblocked.entries.find(e => e.vm.name === 'web')).toMatchObject({ code: 'REPLICA_STARTED' })
    const twice = planFailover(input([web('w1', '20260821T12:00:00Z')], { targetVmNames: new Set(['web (failover)']) }))
    expect(twice.entries.find(e => e.vm.name === 'web')).toMatchObject({ code: 'FAILOVER_VM_EXISTS' })
    const renamed = planFailover(
      input([web('w1', '20260821T12:00:00Z')], { targetVmNames: new Set(['web (failover)']), nameSuffix: '-dr' }),
    )
    expect(renamed.entries.find(e => e.vm.name === 'web')).toMatchObject({ status: 'ready', name: 'web-dr' })
  })

  it('chooses VMs by uuid or name, and refuses one that is not in the job', () => {
    const vms = [web('w1', '20260821T12:00:00Z'), db('d1', '20260821T12:00:00Z')]
    expect(planFailover(input(vms, { vms: ['web', 'vm-b'] })).entries.map(e => e.vm.name)).toEqual(['db', 'web'])
    expect(() => planFailover(input(vms, { vms: ['mail'] }))).toThrow(
      expect.objectContaining({ code: 'VM_NOT_IN_JOB' }) as Error,
    )
  })

  it("starts VMs by the source's order, ascending, each group followed by its longest start delay", () => {
    const blockedStart = { start: START_BLOCKED_MESSAGE }
    const plan = planFailover(
      input([
        web('w1', '20260821T12:00:00Z', { order: 2, start_delay: 0, blocked_operations: blockedStart }),
        db('d1', '20260821T12:00:00Z', { order: 0, start_delay: 30 }),
        app('a1', '20260821T12:00:00Z', { order: 0, start_delay: 10 }),
      ]),
    )
    expect(plan.groups.map(g => [g.order, g.startDelayMs, g.entries.map(e => e.vm.name)])).toEqual([
      [0, 30_000, ['app', 'db']],
      [2, 0, ['web']],
    ])
  })
})
