/**
 * What a pass counts as the job's copies on an SR beyond its own replicas: XO 6.3+'s in-place VM
 * (linked to the job only by its keyed target snapshots) and the copy an interrupted era-A run left
 * without `xo:backup:sr`; and how retention deletes them.
 */
import { describe, expect, it } from 'vitest'
import { IMPORTING_BLOCKED_MESSAGE, KEYS, START_BLOCKED_MESSAGE, type PassIdentity } from './metadata.js'
import { inPlaceReplicaKeys, inPlaceReplicas, interruptedCopiesOnSr, keyedTargetVms } from './plan-history.js'
import type { PlanSr, PlanVbd, PlanVdi, PlanVm, PoolRecords } from './plan-records.js'
import { replicasToDelete } from './plan-retention.js'

const NULL = 'OpaqueRef:NULL'
const ID: PassIdentity = { jobId: 'job-1', scheduleId: 'sch-1', vmUuid: 'vm-1' }
const SR = 'sr-uuid'
const blocked = { start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE }

class Pool implements PoolRecords {
  readonly vms = new Map<string, PlanVm>()
  readonly vbds = new Map<string, PlanVbd>()
  readonly vdis = new Map<string, PlanVdi>()
  readonly srs = new Map<string, PlanSr>()
  #n = 0
  ref(kind: string): string {
    return `OpaqueRef:${kind}-${++this.#n}`
  }
  vm(fields: Partial<PlanVm>, diskSr?: string): string {
    const ref = this.ref('vm')
    const vbds: string[] = []
    if (diskSr !== undefined) {
      const vdi = this.ref('vdi')
      const vbd = this.ref('vbd')
      this.vdis.set(vdi, {
        uuid: `${vdi}-uuid`,
        name_label: 'disk',
        SR: diskSr,
        snapshot_of: NULL,
        is_a_snapshot: fields.is_a_snapshot === true,
        other_config: {},
        virtual_size: 1,
      })
      this.vbds.set(vbd, { VM: ref, VDI: vdi, type: 'Disk', userdevice: '0' })
      vbds.push(vbd)
    }
    this.vms.set(ref, {
      uuid: `${ref}-uuid`,
      name_label: ref,
      power_state: 'Halted',
      is_a_snapshot: false,
      is_a_template: false,
      snapshot_of: NULL,
      other_config: {},
      blocked_operations: {},
      VBDs: vbds,
      ...fields,
    })
    return ref
  }
}

const keys = (datetime: string): Record<string, string> => ({
  [KEYS.job]: ID.jobId,
  [KEYS.schedule]: ID.scheduleId,
  [KEYS.vm]: ID.vmUuid,
  [KEYS.sr]: SR,
  [KEYS.datetime]: datetime,
  [KEYS.copyOf]: `snap-${datetime}`,
})

/** XO 6.3+'s layout: the live VM (only xo:backup:sr left) and one keyed snapshot of it per run. */
function inPlaceLayout(pool: Pool, datetimes: readonly string[]): { holder: string; snapshots: string[] } {
  const holder = pool.vm({ other_config: { [KEYS.sr]: SR }, blocked_operations: blocked }, 'OpaqueRef:sr')
  const snapshots = datetimes.map(d =>
    pool.vm({ is_a_snapshot: true, snapshot_of: holder, other_config: keys(d), blocked_operations: blocked }),
  )
  return { holder, snapshots }
}

describe('the job’s copies beyond its replicas', () => {
  it('finds XO’s in-place VM through its keyed snapshots, and gives it the newest one’s keys', () => {
    const pool = new Pool()
    const { holder, snapshots } = inPlaceLayout(pool, ['20260101T01:00:00Z', '20260101T02:00:00Z'])
    // a snapshot of a template is nobody's in-place replica
    const template = pool.vm({ is_a_template: true })
    pool.vm({ is_a_snapshot: true, snapshot_of: template, other_config: keys('20260101T03:00:00Z') })
    const mine = keyedTargetVms(pool)
    const found = inPlaceReplicas(pool, mine)
    expect(found.map(h => h.ref)).toEqual([holder])
    expect(found[0]!.snapshots.map(s => s.ref)).toEqual([snapshots[1], snapshots[0]])
    expect(inPlaceReplicaKeys(found[0]!)).toEqual({
      [KEYS.job]: ID.jobId,
      [KEYS.schedule]: ID.scheduleId,
      [KEYS.vm]: ID.vmUuid,
      [KEYS.sr]: SR,
      [KEYS.datetime]: '20260101T02:00:00Z',
    })
  })

  it('gives no keys to an in-place VM that has some (claimed already, or XO is writing it)', () => {
    const pool = new Pool()
    const { holder } = inPlaceLayout(pool, ['20260101T01:00:00Z'])
    pool.vms.set(holder, { ...pool.vms.get(holder)!, other_config: keys('19700101T000000Z') })
    const [found] = inPlaceReplicas(pool, keyedTargetVms(pool))
    expect(inPlaceReplicaKeys(found!)).toBeUndefined()
  })

  it('counts the snapshots, not the in-place VM, and deletes the VM after its last snapshot', () => {
    const pool = new Pool()
    const { holder, snapshots } = inPlaceLayout(pool, ['20260101T01:00:00Z', '20260101T02:00:00Z'])
    const replica = pool.vm({ other_config: keys('20260101T03:00:00Z'), blocked_operations: blocked })
    const mine = keyedTargetVms(pool)
    const inPlace = inPlaceReplicas(pool, mine)
    // retention 3: the new copy, the replica and the newer snapshot stay
    expect(replicasToDelete(mine, ID, SR, 3, inPlace).map(r => r.ref)).toEqual([snapshots[0]])
    // retention 2: both snapshots go, then the VM they were snapshots of
    expect(replicasToDelete(mine, ID, SR, 2, inPlace).map(r => r.ref)).toEqual([snapshots[1], snapshots[0], holder])
    expect(replicasToDelete(mine, ID, SR, 2, inPlace).map(r => r.ref)).not.toContain(replica)
  })

  it('takes an interrupted era-A copy without xo:backup:sr for this SR’s, when all its disks are on it', () => {
    const pool = new Pool()
    const srRef = 'OpaqueRef:sr'
    const oc = { ...keys('20260101T01:00:00Z') }
    delete oc[KEYS.sr]
    const importing = { start: IMPORTING_BLOCKED_MESSAGE, start_on: IMPORTING_BLOCKED_MESSAGE }
    const here = pool.vm({ other_config: oc, blocked_operations: importing }, srRef)
    pool.vm({ other_config: oc, blocked_operations: importing }, 'OpaqueRef:other-sr')
    // complete (start blocked with the clone message): not debris
    pool.vm({ other_config: oc, blocked_operations: blocked }, srRef)
    // another source VM's
    pool.vm({ other_config: { ...oc, [KEYS.vm]: 'vm-2' }, blocked_operations: importing }, srRef)
    const found = interruptedCopiesOnSr(pool, keyedTargetVms(pool), ID, srRef)
    expect(found.map(t => t.ref)).toEqual([here])
    // retention deletes it as debris, whatever the retention
    expect(replicasToDelete(found, ID, SR, 5).map(r => r.ref)).toEqual([here])
  })
})
