import { describe, expect, it } from 'vitest'
import { job, now, replica, srs } from '../../test/helpers/replica-records.js'
import { KEYS } from '../replication/metadata.js'
import { planDeletion, type DeletionRequest, type SnapshotFields } from './delete-replicas.js'
import type { ReplicaVmFields } from './job-replicas.js'

const targetVms = new Map<string, ReplicaVmFields>([
  ['r1', replica('r1', 'web', 'vm-a', '20260821T12:00:00Z')],
  ['r2', replica('r2', 'web', 'vm-a', '20260821T13:00:00Z')],
  ['r3', replica('r3', 'db', 'vm-b', '20260821T13:00:00Z')],
  // started by hand, and running: someone's VM now
  ['r4', replica('r4', 'db', 'vm-b', '20260821T12:00:00Z', { blocked_operations: {} })],
  ['r5', replica('r5', 'db', 'vm-b', '20260821T11:00:00Z', { power_state: 'Running' })],
  ['other', replica('other', 'web', 'vm-a', '20260821T13:00:00Z', { keys: { [KEYS.job]: 'job-2' } })],
  ['failover', { ...replica('failover', 'web', 'vm-a', '20260821T13:00:00Z'), other_config: {} }],
])

function snapshot(uuid: string, jobId: string, vmUuid: string): SnapshotFields {
  return {
    uuid,
    name_label: `[XO Backup nightly] ${vmUuid}`,
    is_a_snapshot: true,
    other_config: { [KEYS.job]: jobId, [KEYS.vm]: vmUuid, [KEYS.datetime]: '20260821T13:00:00Z' },
  }
}

const sourceVms = new Map<string, SnapshotFields>([
  ['s1', snapshot('s1', 'job-1', 'vm-a')],
  ['s2', snapshot('s2', 'job-1', 'vm-b')],
  ['s3', snapshot('s3', 'job-2', 'vm-a')],
  ['live', { uuid: 'live', name_label: 'web', is_a_snapshot: false, other_config: { [KEYS.job]: 'job-1' } }],
])

const request = (over: Partial<DeletionRequest>): DeletionRequest => ({
  job,
  targetVms,
  targetSrs: srs,
  sourceVms,
  now,
  ...over,
})
const code = (c: string): Error => expect.objectContaining({ code: c }) as Error

describe('planDeletion', () => {
  it("--all deletes the job's protected replicas and its snapshots, never another job's or a VM in use", () => {
    const plan = planDeletion(request({ all: true }))
    expect(plan.delete.map(d => `${d.side}:${d.uuid}`)).toEqual([
      'target:r3',
      'target:r2',
      'target:r1',
      'source:s1',
      'source:s2',
    ])
    expect(plan.keep.map(k => [k.uuid, k.reason])).toEqual([
      ['r4', expect.stringContaining('unblocked') as string],
      ['r5', 'running'],
    ])
    const webOnly = planDeletion(request({ all: true, vms: ['web'] }))
    expect(webOnly.delete.map(d => d.uuid)).toEqual(['r2', 'r1', 's1'])
    const sourceDown = planDeletion(request({ all: true, sourceVms: undefined }))
    expect(sourceDown.delete.every(d => d.side === 'target')).toBe(true)
  })

  it('--replica deletes exactly that replica of the job, even unblocked, but never a running one or a stranger', () => {
    expect(planDeletion(request({ replica: 'r4' })).delete.map(d => d.uuid)).toEqual(['r4'])
    expect(() => planDeletion(request({ replica: 'r5' }))).toThrow(code('REPLICA_RUNNING'))
    expect(() => planDeletion(request({ replica: 'other' }))).toThrow(code('REPLICA_NOT_IN_JOB'))
    expect(() => planDeletion(request({ replica: 'failover' }))).toThrow(code('REPLICA_NOT_IN_JOB'))
    expect(() => planDeletion(request({}))).toThrow(code('NOTHING_CHOSEN'))
    expect(() => planDeletion(request({ all: true, vms: ['mail'] }))).toThrow(code('VM_NOT_IN_JOB'))
  })
})
