import { Chalk } from 'chalk'
import { describe, expect, it } from 'vitest'
import type { JobListing } from '../replication/list.js'
import type { VmPlan } from '../replication/plan.js'
import { formatAge, formatReplicaList } from './list.js'
import { formatPassPlan } from './run.js'

const style = new Chalk({ level: 0 })

describe('formatAge', () => {
  it('reads at a glance at every scale', () => {
    expect([undefined, 4_000, 12 * 60_000, 3 * 3_600_000 + 5 * 60_000, 50 * 3_600_000].map(formatAge)).toEqual([
      '-',
      '4s',
      '12m',
      '3h05m',
      '2d02h',
    ])
  })
})

describe('formatReplicaList', () => {
  const listing: JobListing = {
    job: { id: 'job-1', name: 'nightly', enabled: false },
    rpoMs: 3_600_000,
    vms: [
      {
        vm: { uuid: 'vm-a', name: 'web' },
        ageMs: 600_000,
        status: 'ok',
        replicas: [
          {
            uuid: 'r1',
            name: 'web - nightly - (20260102T113000Z)',
            srUuid: 's',
            srName: 'Replica A',
            scheduleId: 'x',
            datetime: '20260102T11:30:00Z',
            ageMs: 600_000,
            chain: 'delta',
            complete: true,
          },
          {
            uuid: 'r0',
            name: '[Importing…] web',
            srUuid: 's',
            srName: 'Replica A',
            scheduleId: 'x',
            datetime: undefined,
            ageMs: undefined,
            chain: 'unknown',
            complete: false,
          },
        ],
      },
      { vm: { uuid: 'vm-b', name: 'db' }, ageMs: undefined, status: 'never', replicas: [] },
    ],
  }

  it('shows one line per VM with its status and one per replica', () => {
    const lines = formatReplicaList({ kind: 'replica-list', listings: [listing] }, style)
    expect(lines[0]).toBe('job "nightly" (job-1) [disabled], RPO 1h00m')
    expect(lines[1]).toMatch(/^VM +REPLICA +SR +DATETIME +AGE +CHAIN +STATUS$/)
    expect(lines[2]).toMatch(/^web +1 replica\(s\) +10m +ok$/)
    expect(lines[3]).toMatch(/web - nightly - \(20260102T113000Z\) +Replica A +20260102T11:30:00Z +10m +delta/)
    expect(lines[4]).toMatch(/importing +- +unknown +interrupted$/)
    expect(lines[5]).toMatch(/^db +0 replica\(s\) +- +never$/)
  })

  it('says so when there are no jobs', () => {
    expect(formatReplicaList({ kind: 'replica-list', listings: [] }, style)).toEqual([
      'no jobs; create one with: xen-cr job create --help',
    ])
  })
})

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
