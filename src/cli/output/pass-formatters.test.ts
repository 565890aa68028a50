import { Chalk } from 'chalk'
import { describe, expect, it } from 'vitest'
import type { VmPlan } from '../../replication/plan.js'
import { formatPassPlan } from './pass-formatters.js'

const style = new Chalk({ level: 0 })

describe('formatPassPlan', () => {
  it("names the base, each disk's mode and what will be deleted", () => {
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
      '  then delete 1 older source snapshot',
      '  warning disk data has no base [DISK_WITHOUT_BASE]',
    ])
  })
})
