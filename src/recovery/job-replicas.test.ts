import { describe, expect, it } from 'vitest'
import { job, now, replica, srs } from '../../test/helpers/replica-records.js'
import { IMPORTING_BLOCKED_MESSAGE, KEYS, PLACEHOLDER_DATETIME } from '../replication/metadata.js'
import { groupJobReplicas, sourceVmName, type ReplicaVmFields } from './job-replicas.js'

describe('sourceVmName', () => {
  it('finds the VM name in every replica name shape, also after the job was renamed', () => {
    expect(sourceVmName('web - nightly - (20260821T120000Z)', 'nightly')).toBe('web')
    expect(sourceVmName('web - prod - nightly - (20260821T120000Z)', 'nightly')).toBe('web - prod')
    expect(sourceVmName('web - old job - (20260821T120000Z)', 'nightly')).toBe('web')
    expect(sourceVmName('[Importing…] web - nightly - (20260821T120000Z)', 'nightly')).toBe('web')
    expect(sourceVmName('web (20260821T12:00:00Z)', 'nightly')).toBe('web')
    expect(sourceVmName('hand-made copy', 'nightly')).toBe('hand-made copy')
  })
})

describe('groupJobReplicas', () => {
  it('takes only VMs whose own key names the job, newest first, and flags protection, completeness and starts', () => {
    const vms = new Map<string, ReplicaVmFields>([
      ['r1', replica('r1', 'web', 'vm-a', '20260821T12:00:00Z', { keys: { [KEYS.deltaChainLength]: '0' } })],
      ['r2', replica('r2', 'web', 'vm-a', '20260821T13:00:00Z', { keys: { [KEYS.deltaChainLength]: '1' } })],
      [
        'r3',
        replica('r3', 'web', 'vm-a', PLACEHOLDER_DATETIME, {
          name_label: '[Importing…] web - nightly - (20260821T135500Z)',
          blocked_operations: { start: IMPORTING_BLOCKED_MESSAGE },
        }),
      ],
      ['r4', replica('r4', 'db', 'vm-b', '20260821T13:00:00Z', { power_state: 'Running', blocked_operations: {} })],
      // another job's replica, a failover VM (no key), a snapshot of a replica: none is the job's
      ['x1', replica('x1', 'web', 'vm-a', '20260821T13:00:00Z', { keys: { [KEYS.job]: 'job-2' } })],
      ['x2', { ...replica('x2', 'web', 'vm-a', '20260821T13:00:00Z'), other_config: {}, name_label: 'web (failover)' }],
      ['x3', replica('x3', 'web', 'vm-a', '20260821T13:00:00Z', { is_a_snapshot: true })],
    ])
    const groups = groupJobReplicas({ job, vms, srs, now })
    expect(groups.map(g => [g.vm.uuid, g.vm.name, g.replicas.map(r => r.uuid)])).toEqual([
      ['vm-b', 'db', ['r4']],
      ['vm-c', 'vm-c', []],
      ['vm-a', 'web', ['r2', 'r1', 'r3']],
    ])
    const web = groups[2]!.replicas
    expect(web.map(r => [r.complete, r.protected, r.started, r.chain, r.ageMs, r.srName])).toEqual([
      [true, true, false, 'delta', 3_600_000, 'Replica A'],
      [true, true, false, 'full', 7_200_000, 'Replica A'],
      [false, true, false, 'unknown', undefined, 'Replica A'],
    ])
    expect(groups[0]!.replicas[0]).toMatchObject({ started: true, protected: false, powerState: 'Running' })
  })
})
