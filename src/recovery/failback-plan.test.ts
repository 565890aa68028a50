import { describe, expect, it } from 'vitest'
import { KEYS, RECOVERY_KEYS, START_BLOCKED_MESSAGE } from '../replication/metadata.js'
import type { PlanSr, PlanVbd, PlanVdi, PlanVm, PoolRecords } from '../replication/plan-records.js'
import { planFailback, type FailbackPlanInput, type ReadyFailback } from './failback-plan.js'
import { reverseNetworkMap } from './failback-policy.js'

const JOB = {
  id: 'job-1',
  name: 'nightly',
  schedules: [{ id: 'sched-1', timing: { kind: 'cron', cron: '* * * * *' }, retention: 2 }],
} as const

function vm(over: Partial<PlanVm> & Pick<PlanVm, 'uuid' | 'name_label'>): PlanVm {
  return {
    power_state: 'Halted',
    is_a_snapshot: false,
    is_a_template: false,
    snapshot_of: 'OpaqueRef:NULL',
    other_config: {},
    blocked_operations: {},
    VBDs: [],
    ...over,
  }
}

function vdi(over: Partial<PlanVdi> & Pick<PlanVdi, 'uuid'>): PlanVdi {
  return {
    name_label: over.uuid,
    SR: 'sr',
    snapshot_of: 'OpaqueRef:NULL',
    is_a_snapshot: false,
    other_config: {},
    virtual_size: 8 << 20,
    ...over,
  }
}

type Pool = PoolRecords & {
  vms: Map<string, PlanVm>
  vbds: Map<string, PlanVbd>
  vdis: Map<string, PlanVdi>
  srs: Map<string, PlanSr>
}

interface World {
  source: Pool
  target: Pool
}

function attach(pool: Pool, vmRef: string, disks: [string, string, PlanVdi][]): void {
  const record = pool.vms.get(vmRef)!
  const vbds: string[] = []
  for (const [vbdRef, vdiRef, record] of disks) {
    pool.vdis.set(vdiRef, record)
    pool.vbds.set(vbdRef, { VM: vmRef, VDI: vdiRef, type: 'Disk', userdevice: String(vbds.length) })
    vbds.push(vbdRef)
  }
  pool.vms.set(vmRef, { ...record, VBDs: vbds })
}

/**
 * The chain a failover leaves: original VM web (one disk) with the job's base snapshot S, replica
 * R on the target (a copy of S), and the failover VM F cloned from R, carrying its origin keys.
 */
function world(): World {
  const pool = (): Pool => ({ vms: new Map(), vbds: new Map(), vdis: new Map(), srs: new Map() })
  const w: World = { source: pool(), target: pool() }
  w.source.srs.set('src-sr', { uuid: 'src-sr-uuid', name_label: 'Local storage' })
  w.target.srs.set('tgt-sr', { uuid: 'tgt-sr-uuid', name_label: 'Replica A' })
  w.source.vms.set('o', vm({ uuid: 'web-uuid', name_label: 'web' }))
  attach(w.source, 'o', [['o-vbd', 'o-vdi', vdi({ uuid: 'o-disk', SR: 'src-sr' })]])
  const keys = {
    [KEYS.job]: JOB.id,
    [KEYS.schedule]: 'sched-1',
    [KEYS.vm]: 'web-uuid',
    [KEYS.datetime]: '20260821T13:00:00Z',
  }
  w.source.vms.set(
    's',
    vm({
      uuid: 's-uuid',
      name_label: '[XO Backup nightly] web',
      is_a_snapshot: true,
      snapshot_of: 'o',
      other_config: { ...keys, [KEYS.exported]: 'true', [KEYS.deltaChainLength]: '1' },
    }),
  )
  attach(w.source, 's', [
    [
      's-vbd',
      's-vdi',
      vdi({
        uuid: 's-disk',
        SR: 'src-sr',
        is_a_snapshot: true,
        snapshot_of: 'o-vdi',
        other_config: { ...keys, [KEYS.exported]: 'true' },
      }),
    ],
  ])
  w.target.vms.set(
    'r',
    vm({
      uuid: 'r-uuid',
      name_label: 'web - nightly - (20260821T130000Z)',
      other_config: { ...keys, [KEYS.sr]: 'tgt-sr-uuid', [KEYS.copyOf]: 's-uuid' },
      blocked_operations: { start: START_BLOCKED_MESSAGE },
    }),
  )
  attach(w.target, 'r', [
    ['r-vbd', 'r-vdi', vdi({ uuid: 'r-disk', SR: 'tgt-sr', other_config: { [KEYS.copyOf]: 's-disk' } })],
  ])
  w.target.vms.set(
    'f',
    vm({
      uuid: 'f-uuid',
      name_label: 'web (failover)',
      power_state: 'Running',
      other_config: { [RECOVERY_KEYS.failoverReplica]: 'r-uuid', [RECOVERY_KEYS.failoverJob]: JOB.id },
    }),
  )
  attach(w.target, 'f', [
    [
      'f-vbd',
      'f-vdi',
      vdi({ uuid: 'f-disk', SR: 'tgt-sr', other_config: { [RECOVERY_KEYS.failoverReplicaVdi]: 'r-disk' } }),
    ],
  ])
  return w
}

const plan = (w: World, over: Partial<FailbackPlanInput> = {}) =>
  planFailback({ job: JOB, source: w.source, target: w.target, mode: 'new', nameSuffix: '', ...over })

describe('planFailback', () => {
  it('pairs each failed-over disk with the replica disk it came from and that replica disk with its base snapshot disk', () => {
    const [entry] = plan(world()).entries
    expect(entry).toMatchObject({
      status: 'ready',
      mode: 'new',
      name: 'web',
      replica: { uuid: 'r-uuid', datetime: '20260821T13:00:00Z', srUuid: 'tgt-sr-uuid', srRef: 'tgt-sr' },
      base: { uuid: 's-uuid', deltaChainLength: 1, scheduleId: 'sched-1' },
      original: { uuid: 'web-uuid', powerState: 'Halted' },
    })
    expect((entry as ReadyFailback).disks).toEqual([
      {
        userdevice: '0',
        failedOver: { ref: 'f-vdi', uuid: 'f-disk', name: 'f-disk', virtualSize: 8 << 20 },
        delta: {
          replica: { ref: 'r-vdi', uuid: 'r-disk', name: 'r-disk' },
          base: { ref: 's-vdi', uuid: 's-disk', name: 's-disk', srRef: 'src-sr' },
          original: { ref: 'o-vdi', uuid: 'o-disk', name: 'o-disk' },
        },
      },
    ])
  })

  it('sends a disk added after failover in full, and finds VMs by name, uuid, or the uuid they stand in for', () => {
    const w = world()
    w.target.vdis.set('new-vdi', vdi({ uuid: 'new-disk', SR: 'tgt-sr' }))
    w.target.vbds.set('new-vbd', { VM: 'f', VDI: 'new-vdi', type: 'Disk', userdevice: '1' })
    w.target.vms.set('f', { ...w.target.vms.get('f')!, VBDs: ['f-vbd', 'new-vbd'] })
    for (const handle of ['web (failover)', 'f-uuid', 'web-uuid']) {
      const [entry] = plan(w, { vms: [handle] }).entries
      expect((entry as ReadyFailback).disks.map(d => [d.userdevice, d.delta === undefined ? 'full' : 'delta'])).toEqual(
        [
          ['0', 'delta'],
          ['1', 'full'],
        ],
      )
    }
    const [unknown] = plan(w, { vms: ['nosuch'] }).entries
    expect(unknown).toMatchObject({ status: 'refused', code: 'NOT_FAILED_OVER', failedOver: { name: 'nosuch' } })
  })

  it('refuses when the chain back to the base is broken: replica gone or started, base snapshot gone, replica disk gone', () => {
    const cases: [string, (w: World) => void, RegExp][] = [
      ['replica deleted', w => w.target.vms.delete('r'), /replica r-uuid .* is no longer on the target pool/],
      [
        'replica started',
        w => w.target.vms.set('r', { ...w.target.vms.get('r')!, blocked_operations: {} }),
        /was started or its start unblocked/,
      ],
      [
        'base deleted',
        w => w.source.vms.delete('s'),
        /base snapshot s-uuid of replica .* is no longer on the source pool/,
      ],
      [
        'replica disk replaced',
        w =>
          w.target.vdis.set(
            'f-vdi',
            vdi({ uuid: 'f-disk', other_config: { [RECOVERY_KEYS.failoverReplicaVdi]: 'other' } }),
          ),
        /came from replica disk other, which is gone/,
      ],
    ]
    for (const [what, change, message] of cases) {
      const w = world()
      change(w)
      const [entry] = plan(w).entries
      expect(entry, what).toMatchObject({ status: 'refused', code: 'FAILBACK_NO_BASE' })
      expect(entry?.status === 'refused' && entry.message, what).toMatch(message)
    }
  })

  it('in place only onto a halted original that still has the disks the base was taken of', () => {
    expect(plan(world(), { mode: 'in-place' }).entries[0]).toMatchObject({
      status: 'ready',
      mode: 'in-place',
      name: 'web',
    })
    const running = world()
    running.source.vms.set('o', { ...running.source.vms.get('o')!, power_state: 'Running' })
    expect(plan(running, { mode: 'in-place' }).entries[0]).toMatchObject({
      status: 'refused',
      code: 'IN_PLACE_REFUSED',
    })
    const [runningEntry] = plan(running, { mode: 'in-place' }).entries
    expect(runningEntry?.status === 'refused' && runningEntry.message).toMatch(/is Running, not halted/)
    const gone = world()
    gone.source.vms.delete('o')
    const [withoutOriginal] = plan(gone, { mode: 'in-place' }).entries
    expect(withoutOriginal?.status === 'refused' && [withoutOriginal.code, withoutOriginal.message]).toEqual([
      'IN_PLACE_REFUSED',
      'the original VM of web (failover) is no longer on the source pool; nothing written: fail back to a new VM instead',
    ])
    // a new VM is still possible without the original
    expect(plan(gone).entries[0]).toMatchObject({ status: 'ready', name: 'web' })
  })
})

describe('reverseNetworkMap', () => {
  it('turns the job map around, leaving out a target network two source networks share', () => {
    expect(reverseNetworkMap({ a: 'x', b: 'y', c: 'y' })).toEqual({ x: 'a' })
  })
})
