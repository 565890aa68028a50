import { Chalk } from 'chalk'
import { describe, expect, it } from 'vitest'
import type { VmPlan } from '../../replication/plan.js'
import { formatPassPlan } from './pass-formatters.js'

const style = new Chalk({ level: 0 })

describe('formatPassPlan', () => {
  it("names the base, each disk's mode and each object that will be deleted", () => {
    const plan: VmPlan = {
      vm: { ref: 'r', uuid: 'vm-a', name: 'web' },
      identity: { jobId: 'j', scheduleId: 's', vmUuid: 'vm-a' },
      base: { ref: 'b', uuid: 'b', name: 'snap', datetime: '20260102T11:30:00Z', deltaChainLength: 2, era: 'B' },
      mode: 'delta',
      nextDeltaChainLength: 3,
      targets: [
        {
          sr: { ref: 's', uuid: 's', name: 'Replica A' },
          disks: [
            { vdi: { ref: 'd0', uuid: 'd0', name: 'root' }, userdevice: '0', virtualSize: 1, mode: 'delta' },
            {
              vdi: { ref: 'd1', uuid: 'd1', name: 'data' },
              userdevice: '1',
              virtualSize: 1,
              mode: 'full',
              reason: 'new-disk',
            },
          ],
          deleteReplicas: [{ ref: 'x', uuid: 'x', name: 'old', datetime: undefined }],
        },
      ],
      deleteSnapshots: [{ ref: 'o', uuid: 'o', name: 'older' }],
      warnings: [{ code: 'DISK_WITHOUT_BASE', message: 'disk data has no base' }],
    }
    expect(
      formatPassPlan({ kind: 'pass-plan', job: { id: 'j', name: 'nightly' }, scheduleId: 's', plans: [plan] }, style),
    ).toEqual([
      'web (vm-a): delta from snapshot 20260102T11:30:00Z (era B, chain 2)',
      '  SR Replica A: disk 0 delta, disk 1 full (new-disk); then delete 1 old replica',
      '    replica old (x), left by an interrupted pass',
      '  then delete 1 older source snapshot',
      '    snapshot older (o)',
      '  warning disk data has no base [DISK_WITHOUT_BASE]',
    ])
  })
})

describe('formatPassPlan deletions', () => {
  it('gives each replica to delete its datetime, and says which were left by an interrupted pass', () => {
    const plan: VmPlan = {
      vm: { ref: 'r', uuid: 'vm-a', name: 'web' },
      identity: { jobId: 'j', scheduleId: 's', vmUuid: 'vm-a' },
      mode: 'full',
      nextDeltaChainLength: 0,
      targets: [
        {
          sr: { ref: 's', uuid: 's', name: 'Replica A' },
          disks: [],
          deleteReplicas: [
            { ref: 'x', uuid: 'x-uuid', name: 'web - nightly - (20260101T100000Z)', datetime: '20260101T10:00:00Z' },
            { ref: 'y', uuid: 'y-uuid', name: 'web - nightly - (19700101T000000Z)', datetime: '19700101T000000Z' },
          ],
        },
      ],
      deleteSnapshots: [],
      warnings: [],
    }
    expect(
      formatPassPlan({ kind: 'pass-plan', job: { id: 'j', name: 'nightly' }, scheduleId: 's', plans: [plan] }, style),
    ).toEqual([
      'web (vm-a): full',
      '  SR Replica A: no disks; then delete 2 old replicas',
      '    replica web - nightly - (20260101T100000Z) (x-uuid), of 20260101T10:00:00Z',
      '    replica web - nightly - (19700101T000000Z) (y-uuid), left by an interrupted pass',
    ])
  })
})
