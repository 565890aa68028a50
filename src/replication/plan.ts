/**
 * Deciding what one pass does for one VM — which base, full or delta per disk and SR, what to
 * delete afterwards — as a pure function of XAPI records. Applying it is `execute-vm.ts`.
 */
import { ValidationError } from '../errors.js'
import {
  IMPORTING_BLOCKED_MESSAGE,
  TEMP_SNAPSHOT_NAME,
  datetimeSortKey,
  isStartBlocked,
  readReplica,
  readSourceSnapshot,
  replicaBelongsTo,
  type PassIdentity,
  type ReplicaMeta,
  type SourceSnapshotMeta,
} from './metadata.js'

type Map_<V> = ReadonlyMap<string, V>
type Strings = Readonly<Record<string, string>>

/** The fields of a VM record the plan reads (a subset of XAPI's VM record). */
export interface PlanVm {
  readonly uuid: string
  readonly name_label: string
  readonly power_state: string
  readonly is_a_snapshot: boolean
  readonly is_a_template: boolean
  readonly snapshot_of: string
  readonly other_config: Strings
  readonly blocked_operations: Strings
  readonly VBDs: readonly string[]
}

export interface PlanVbd {
  readonly VM: string
  readonly VDI: string
  readonly type: string
  readonly userdevice: string
}

export interface PlanVdi {
  readonly uuid: string
  readonly name_label: string
  readonly SR: string
  readonly snapshot_of: string
  readonly is_a_snapshot: boolean
  readonly other_config: Strings
  readonly virtual_size: number
}

export interface PlanSr {
  readonly uuid: string
  readonly name_label: string
}

/** Records of one pool, keyed by ref (as `get_all_records` returns them). */
export interface PoolRecords {
  readonly vms: Map_<PlanVm>
  readonly vbds: Map_<PlanVbd>
  readonly vdis: Map_<PlanVdi>
  readonly srs: Map_<PlanSr>
}

export interface PlanInput {
  readonly job: {
    readonly id: string
    readonly name: string
    readonly fullInterval: number
    readonly srs: readonly string[]
  }
  readonly schedule: { readonly id: string; readonly retention: number }
  readonly vmRef: string
  readonly source: PoolRecords
  /** the same object as `source` when replicating within one pool */
  readonly target: PoolRecords
  /** force every disk full (e.g. `run --full`) */
  readonly forceFull?: boolean
}

/** A recoverable oddity found while planning; the pass goes on. */
export interface PlanWarning {
  readonly code: 'REPLICA_NOT_SAFE_BASE' | 'BASE_MISSING_ON_TARGET' | 'DISK_WITHOUT_BASE'
  readonly message: string
}

export interface ObjectRef {
  readonly ref: string
  readonly uuid: string
  readonly name: string
}

export type FullReason = 'no-base' | 'new-disk' | 'target-disk-missing' | 'full-interval' | 'forced'

export interface DiskPlan {
  /** the live source disk */
  readonly vdi: ObjectRef
  readonly userdevice: string
  readonly virtualSize: number
  readonly mode: 'full' | 'delta'
  /** why it is full */
  readonly reason?: FullReason
  /** the source base snapshot disk (delta only) */
  readonly baseSnapshotVdi?: ObjectRef
  /** the target disk to clone (delta only) */
  readonly targetBaseVdi?: ObjectRef
}

export interface ReplicaRef extends ObjectRef {
  readonly datetime: string | undefined
}

export interface SrPlan {
  readonly sr: ObjectRef
  /** the replica (or era-C target snapshot) the deltas go on top of */
  readonly baseReplica?: ReplicaRef
  readonly disks: readonly DiskPlan[]
  /** replicas to destroy once the new one is complete: beyond retention, or left by interrupted passes */
  readonly deleteReplicas: readonly ReplicaRef[]
}

export interface BaseSnapshot extends ObjectRef {
  readonly datetime: string
  readonly deltaChainLength: number
  readonly era: SourceSnapshotMeta['era']
}

export interface VmPlan {
  readonly vm: ObjectRef
  readonly identity: PassIdentity
  /** newest exported snapshot of this job with a usable copy on every SR that has a base */
  readonly base?: BaseSnapshot
  readonly mode: 'full' | 'delta'
  /** `xo:backup:deltaChainLength` to write on the new snapshot after the transfer */
  readonly nextDeltaChainLength: number
  readonly targets: readonly SrPlan[]
  /** source snapshots to destroy after success (never the new one, which does not exist yet) */
  readonly deleteSnapshots: readonly ObjectRef[]
  readonly warnings: readonly PlanWarning[]
}

/** The VM cannot be replicated by this job at all. */
export class PlanRefusal extends ValidationError {
  constructor(code: 'VM_NOT_FOUND' | 'VM_IS_REPLICA' | 'VM_IS_SNAPSHOT_OR_TEMPLATE' | 'SR_NOT_FOUND', message: string) {
    super(code, message)
  }
}

interface Disk {
  readonly ref: string
  readonly vdi: PlanVdi
  readonly userdevice: string
}

/** The Disk VBDs of a VM with a VDI, in userdevice order. */
export function disksOf(vm: PlanVm, pool: PoolRecords): Disk[] {
  const out: Disk[] = []
  for (const vbdRef of vm.VBDs) {
    const vbd = pool.vbds.get(vbdRef)
    if (vbd === undefined || vbd.type !== 'Disk') continue
    const vdi = pool.vdis.get(vbd.VDI)
    if (vdi === undefined) continue
    out.push({ ref: vbd.VDI, vdi, userdevice: vbd.userdevice })
  }
  return out.sort((a, b) => Number(a.userdevice) - Number(b.userdevice))
}

interface Candidate {
  readonly ref: string
  readonly vm: PlanVm
  readonly meta: SourceSnapshotMeta
  readonly disks: Disk[]
}

const objectRef = (ref: string, r: { readonly uuid: string; readonly name_label: string }): ObjectRef => ({
  ref,
  uuid: r.uuid,
  name: r.name_label,
})

/**
 * Plans one VM of one pass. Throws {@link PlanRefusal} when the VM cannot be replicated.
 */
export function planVm(input: PlanInput): VmPlan {
  const { job, schedule, source, target } = input
  const vm = source.vms.get(input.vmRef)
  if (vm === undefined) throw new PlanRefusal('VM_NOT_FOUND', `VM ${input.vmRef} not found on the source pool`)
  if (vm.is_a_snapshot || vm.is_a_template) {
    throw new PlanRefusal(
      'VM_IS_SNAPSHOT_OR_TEMPLATE',
      `VM ${vm.name_label} (${vm.uuid}) is a snapshot or template; select a VM`,
    )
  }
  // Replicating our own replica would chain replicas of replicas (XO #1811).
  if (vm.other_config['xo:backup:job'] === job.id && isStartBlocked(vm.blocked_operations)) {
    throw new PlanRefusal(
      'VM_IS_REPLICA',
      `VM ${vm.name_label} (${vm.uuid}) is a replica made by job ${job.name}; it cannot be replicated by it`,
    )
  }
  const identity: PassIdentity = { jobId: job.id, scheduleId: schedule.id, vmUuid: vm.uuid }
  const warnings: PlanWarning[] = []
  const liveDisks = disksOf(vm, source)

  // Source side: this job's snapshots of this VM (XO `_fetchJobSnapshots`), any era.
  const jobSnapshots: Candidate[] = []
  const debris: ObjectRef[] = []
  for (const [ref, snap] of source.vms) {
    if (!snap.is_a_snapshot || snap.snapshot_of !== input.vmRef) continue
    if (snap.name_label === TEMP_SNAPSHOT_NAME) {
      debris.push(objectRef(ref, snap))
      continue
    }
    const disks = disksOf(snap, source)
    const meta = readSourceSnapshot(
      snap.other_config,
      disks.map(d => d.vdi.other_config),
    )
    if (meta === undefined || meta.jobId !== job.id) continue
    if (meta.vmUuid !== undefined && meta.vmUuid !== vm.uuid) continue
    jobSnapshots.push({ ref, vm: snap, meta, disks })
  }
  const candidates = jobSnapshots
    .filter(c => c.meta.exported)
    .sort((a, b) => datetimeSortKey(b.meta.datetime).localeCompare(datetimeSortKey(a.meta.datetime)))

  // Target side: every VM (replica or era-C snapshot) with keys of this job.
  const targetVms: { ref: string; vm: PlanVm; meta: ReplicaMeta }[] = []
  for (const [ref, tvm] of target.vms) {
    if (tvm.is_a_template && !tvm.is_a_snapshot) continue
    const meta = readReplica(tvm)
    if (meta.jobId === undefined && meta.scheduleId === undefined) continue
    targetVms.push({ ref, vm: tvm, meta })
  }

  let usedBase: Candidate | undefined
  const targets: SrPlan[] = []
  for (const srUuid of job.srs) {
    const srEntry = [...target.srs].find(([, sr]) => sr.uuid === srUuid)
    if (srEntry === undefined)
      throw new PlanRefusal(
        'SR_NOT_FOUND',
        `SR ${srUuid} of job ${job.name} not found on the target pool; fix the job's SRs`,
      )
    const [srRef, sr] = srEntry
    const mine = targetVms.filter(t => replicaBelongsTo(t.meta, identity, srUuid, 'job'))

    let chosen: { candidate: Candidate; replica: (typeof mine)[number]; disks: DiskPlan[] } | undefined
    if (input.forceFull !== true) {
      for (const candidate of candidates) {
        const replica = mine.find(t => t.meta.copyOf === candidate.vm.uuid && t.meta.complete)
        if (replica === undefined) continue
        // A replica someone started (or could start) may have been written to: a delta on top
        // of it would silently corrupt the copy. Era-C target snapshots are immutable.
        if (!replica.vm.is_a_snapshot) {
          const start = replica.vm.blocked_operations['start']
          if (start === undefined || start === IMPORTING_BLOCKED_MESSAGE || replica.vm.power_state !== 'Halted') {
            warnings.push({
              code: 'REPLICA_NOT_SAFE_BASE',
              message: `replica ${replica.vm.name_label} (${replica.vm.uuid}) on SR ${sr.name_label} was started or its start unblocked; it is not a safe base, sending a full copy`,
            })
            continue
          }
        }
        const replicaDisks = disksOf(replica.vm, target)
        const disks = liveDisks.map((live): DiskPlan => {
          const common = {
            vdi: objectRef(live.ref, live.vdi),
            userdevice: live.userdevice,
            virtualSize: live.vdi.virtual_size,
          }
          const baseDisk = candidate.disks.find(d => d.vdi.snapshot_of === live.ref)
          if (baseDisk === undefined) return { ...common, mode: 'full', reason: 'new-disk' }
          const targetDisk = replicaDisks.find(
            d => d.vdi.other_config['xo:copy_of'] === baseDisk.vdi.uuid && d.vdi.SR === srRef,
          )
          if (targetDisk === undefined) return { ...common, mode: 'full', reason: 'target-disk-missing' }
          return {
            ...common,
            mode: 'delta',
            baseSnapshotVdi: objectRef(baseDisk.ref, baseDisk.vdi),
            targetBaseVdi: objectRef(targetDisk.ref, targetDisk.vdi),
          }
        })
        if (disks.some(d => d.mode === 'delta')) {
          chosen = { candidate, replica, disks }
          break
        }
      }
    }

    let disks: DiskPlan[]
    if (chosen === undefined) {
      const reason: FullReason = input.forceFull === true ? 'forced' : 'no-base'
      if (candidates.length > 0 && reason === 'no-base') {
        warnings.push({
          code: 'BASE_MISSING_ON_TARGET',
          message: `no usable copy of an exported snapshot of VM ${vm.name_label} on SR ${sr.name_label}; sending a full copy`,
        })
      }
      disks = liveDisks.map(live => ({
        vdi: objectRef(live.ref, live.vdi),
        userdevice: live.userdevice,
        virtualSize: live.vdi.virtual_size,
        mode: 'full',
        reason,
      }))
    } else {
      const fi = job.fullInterval
      // XO: fullInterval N gives a full every N runs (`fullInterval <= deltaChainLength + 1`).
      if (fi !== 0 && fi <= chosen.candidate.meta.deltaChainLength + 1) {
        disks = chosen.disks.map(({ vdi, userdevice, virtualSize }) => ({
          vdi,
          userdevice,
          virtualSize,
          mode: 'full',
          reason: 'full-interval',
        }))
        chosen = undefined
      } else {
        disks = chosen.disks
        for (const d of disks) {
          if (d.mode === 'full') {
            warnings.push({
              code: 'DISK_WITHOUT_BASE',
              message: `disk ${d.vdi.name} (${d.vdi.uuid}) of VM ${vm.name_label} has no base on SR ${sr.name_label}; sending it in full`,
            })
          }
        }
        if (
          usedBase === undefined ||
          datetimeSortKey(chosen.candidate.meta.datetime) > datetimeSortKey(usedBase.meta.datetime)
        ) {
          usedBase = chosen.candidate
        }
      }
    }

    // Retention per schedule, SR and VM: keep retention − 1 complete protected replicas, the new
    // one makes `retention`. Replicas whose start was unblocked are someone's VM now (XO #2724):
    // never counted, never deleted. Interrupted replicas are debris (XO PR #10404).
    const own = mine.filter(t => !t.vm.is_a_snapshot && isStartBlocked(t.vm.blocked_operations))
    const complete = own
      .filter(t => t.meta.complete && replicaBelongsTo(t.meta, identity, srUuid, 'schedule'))
      .sort((a, b) => datetimeSortKey(b.meta.datetime).localeCompare(datetimeSortKey(a.meta.datetime)))
    const keep = Math.max(0, schedule.retention - 1)
    const deleteReplicas: ReplicaRef[] = [...complete.slice(keep), ...own.filter(t => !t.meta.complete)].map(t => ({
      ...objectRef(t.ref, t.vm),
      datetime: t.meta.datetime,
    }))

    targets.push({
      sr: objectRef(srRef, sr),
      ...(chosen === undefined
        ? {}
        : {
            baseReplica: {
              ...objectRef(chosen.replica.ref, chosen.replica.vm),
              datetime: chosen.replica.meta.datetime,
            },
          }),
      disks,
      deleteReplicas,
    })
  }

  const anyDelta = targets.some(t => t.disks.some(d => d.mode === 'delta'))
  return {
    vm: objectRef(input.vmRef, vm),
    identity,
    ...(usedBase === undefined
      ? {}
      : {
          base: {
            ...objectRef(usedBase.ref, usedBase.vm),
            datetime: usedBase.meta.datetime,
            deltaChainLength: usedBase.meta.deltaChainLength,
            era: usedBase.meta.era,
          },
        }),
    mode: anyDelta ? 'delta' : 'full',
    nextDeltaChainLength: anyDelta && usedBase !== undefined ? usedBase.meta.deltaChainLength + 1 : 0,
    targets,
    // After success the new snapshot is the only base that matters; older ones (and debris of
    // crashed runs) go. A failed pass deletes nothing, so the previous base survives.
    deleteSnapshots: [...jobSnapshots.map(c => objectRef(c.ref, c.vm)), ...debris],
    warnings,
  }
}
