import { describe, expect, it } from 'vitest'
import { job, now, replica, srs } from '../../test/helpers/replica-records.js'
import { IMPORTING_BLOCKED_MESSAGE, PLACEHOLDER_DATETIME } from '../replication/metadata.js'
import { chooseReplicas } from './choose-replica.js'
import { groupJobReplicas, type ReplicaVmFields } from './job-replicas.js'

// vm-a: two complete replicas and one left by an interrupted pass; vm-b: only the interrupted
// one; vm-c: none.
const groups = groupJobReplicas({
  job,
  srs,
  now,
  vms: new Map<string, ReplicaVmFields>([
    ['a1', replica('a1', 'web', 'vm-a', '20260821T12:00:00Z')],
    ['a2', replica('a2', 'web', 'vm-a', '20260821T13:00:00Z')],
    [
      'a3',
      replica('a3', 'web', 'vm-a', PLACEHOLDER_DATETIME, {
        name_label: '[Importing…] web - nightly - (20260821T135500Z)',
        blocked_operations: { start: IMPORTING_BLOCKED_MESSAGE },
      }),
    ],
    [
      'b1',
      replica('b1', 'db', 'vm-b', PLACEHOLDER_DATETIME, {
        name_label: '[Importing…] db - nightly - (20260821T135500Z)',
        blocked_operations: { start: IMPORTING_BLOCKED_MESSAGE },
      }),
    ],
  ]),
})

const summary = (choices: ReturnType<typeof chooseReplicas>) =>
  choices.map(c => (c.status === 'ready' ? [c.vm.name, c.replica.uuid] : [c.vm.name, c.code]))

describe('chooseReplicas', () => {
  it("takes each VM's newest complete replica and refuses the VMs without one, each with its code", () => {
    expect(summary(chooseReplicas(groups, { jobName: 'nightly' }))).toEqual([
      ['db', 'NO_COMPLETE_REPLICA'],
      ['vm-c', 'NO_REPLICA'],
      ['web', 'a2'],
    ])
    expect(summary(chooseReplicas(groups, { jobName: 'nightly', vms: ['web', 'vm-c'] }))).toEqual([
      ['vm-c', 'NO_REPLICA'],
      ['web', 'a2'],
    ])
  })

  it('takes exactly --replica, refusing an interrupted one; a replica of another job or VM is an error', () => {
    expect(summary(chooseReplicas(groups, { jobName: 'nightly', replica: 'a1' }))).toEqual([['web', 'a1']])
    expect(summary(chooseReplicas(groups, { jobName: 'nightly', replica: 'A1', vms: ['vm-a'] }))).toEqual([
      ['web', 'a1'],
    ])
    expect(summary(chooseReplicas(groups, { jobName: 'nightly', replica: 'a3' }))).toEqual([
      ['web', 'NO_COMPLETE_REPLICA'],
    ])
    expect(() => chooseReplicas(groups, { jobName: 'nightly', replica: 'zz' })).toThrow(
      expect.objectContaining({ code: 'REPLICA_NOT_IN_JOB' }),
    )
    expect(() => chooseReplicas(groups, { jobName: 'nightly', replica: 'a1', vms: ['db'] })).toThrow(
      expect.objectContaining({ code: 'CONFLICTING_OPTIONS' }),
    )
    expect(() => chooseReplicas(groups, { jobName: 'nightly', vms: ['mail'] })).toThrow(
      expect.objectContaining({ code: 'VM_NOT_IN_JOB' }),
    )
  })
})
