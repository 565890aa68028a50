/**
 * The base of one SR's replica: the newest exported snapshot of the job whose copy on the SR is
 * a safe replica, and per disk full or delta on top of it — or full for the whole VM when there
 * is none, the job's full interval is due, or a full copy is forced.
 */
import { IMPORTING_BLOCKED_MESSAGE, KEYS } from './metadata.js'
import type { JobSnapshot, TargetVm } from './plan-history.js'
import { disksOf, objectRef, type ObjectRef, type PlanDisk, type PlanVm, type PoolRecords } from './plan-records.js'

/** A recoverable oddity found while planning; the pass goes on. */
export interface PlanWarning {
  readonly code: 'REPLICA_NOT_SAFE_BASE' | 'BASE_MISSING_ON_TARGET' | 'DISK_WITHOUT_BASE'
  readonly message: string
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

export interface SrBaseInput {
  /** the live VM and its disks */
  readonly vm: PlanVm
  readonly liveDisks: readonly PlanDisk[]
  /** exported snapshots of the job, newest first */
  readonly candidates: readonly JobSnapshot[]
  /** the job's VMs on the target that belong to this SR */
  readonly mine: readonly TargetVm[]
  readonly srRef: string
  readonly srName: string
  readonly target: PoolRecords
  readonly fullInterval: number
  readonly forceFull: boolean
}

export interface SrBase {
  /** the snapshot and its replica the deltas go on top of; absent when every disk is full */
  readonly base?: { readonly snapshot: JobSnapshot; readonly replica: TargetVm }
  readonly disks: readonly DiskPlan[]
  readonly warnings: readonly PlanWarning[]
}

/** Chooses the base on one SR and plans its disks. */
export function planSrBase(input: SrBaseInput): SrBase {
  const warnings: PlanWarning[] = []
  const found = input.forceFull ? undefined : findBase(input, warnings)
  if (found === undefined) {
    const reason: FullReason = input.forceFull ? 'forced' : 'no-base'
    if (input.candidates.length > 0 && reason === 'no-base') {
      warnings.push({
        code: 'BASE_MISSING_ON_TARGET',
        message: `no usable copy of an exported snapshot of VM ${input.vm.name_label} on SR ${input.srName}; sending a full copy`,
      })
    }
    return { disks: fullDisks(input.liveDisks, reason), warnings }
  }
  const fi = input.fullInterval
  // XO: fullInterval N gives a full every N runs (`fullInterval <= deltaChainLength + 1`).
  if (fi !== 0 && fi <= found.snapshot.meta.deltaChainLength + 1) {
    return { disks: found.disks.map(d => fullDisk(d, 'full-interval')), warnings }
  }
  for (const d of found.disks) {
    if (d.mode === 'full') {
      warnings.push({
        code: 'DISK_WITHOUT_BASE',
        message: `disk ${d.vdi.name} (${d.vdi.uuid}) of VM ${input.vm.name_label} has no base on SR ${input.srName}; sending it in full`,
      })
    }
  }
  return { base: { snapshot: found.snapshot, replica: found.replica }, disks: found.disks, warnings }
}

interface FoundBase {
  readonly snapshot: JobSnapshot
  readonly replica: TargetVm
  readonly disks: readonly DiskPlan[]
}

/** The newest candidate with a complete, safe replica on the SR that gives at least one disk a delta. */
function findBase(input: SrBaseInput, warnings: PlanWarning[]): FoundBase | undefined {
  for (const snapshot of input.candidates) {
    const replica = input.mine.find(t => t.meta.copyOf === snapshot.vm.uuid && t.meta.complete)
    if (replica === undefined) continue
    const unsafe = unsafeBase(replica, input.srName)
    if (unsafe !== undefined) {
      warnings.push(unsafe)
      continue
    }
    const replicaDisks = disksOf(replica.vm, input.target)
    const disks = input.liveDisks.map(live => diskOnBase(live, snapshot, replicaDisks, input.srRef))
    if (disks.some(d => d.mode === 'delta')) return { snapshot, replica, disks }
  }
  return undefined
}

/**
 * A replica someone started (or could start) may have been written to: a delta on top of it
 * would silently corrupt the copy. Era-C target snapshots are immutable.
 */
function unsafeBase(replica: TargetVm, srName: string): PlanWarning | undefined {
  if (replica.vm.is_a_snapshot) return undefined
  const start = replica.vm.blocked_operations['start']
  if (start !== undefined && start !== IMPORTING_BLOCKED_MESSAGE && replica.vm.power_state === 'Halted')
    return undefined
  return {
    code: 'REPLICA_NOT_SAFE_BASE',
    message: `replica ${replica.vm.name_label} (${replica.vm.uuid}) on SR ${srName} was started or its start unblocked; it is not a safe base, sending a full copy`,
  }
}

/** A live disk as a delta on `snapshot`'s copy of it on the SR, or full when either side lacks it. */
function diskOnBase(live: PlanDisk, snapshot: JobSnapshot, replicaDisks: readonly PlanDisk[], srRef: string): DiskPlan {
  const common = { vdi: objectRef(live.ref, live.vdi), userdevice: live.userdevice, virtualSize: live.vdi.virtual_size }
  const baseDisk = snapshot.disks.find(d => d.vdi.snapshot_of === live.ref)
  if (baseDisk === undefined) return { ...common, mode: 'full', reason: 'new-disk' }
  const targetDisk = replicaDisks.find(d => d.vdi.other_config[KEYS.copyOf] === baseDisk.vdi.uuid && d.vdi.SR === srRef)
  if (targetDisk === undefined) return { ...common, mode: 'full', reason: 'target-disk-missing' }
  return {
    ...common,
    mode: 'delta',
    baseSnapshotVdi: objectRef(baseDisk.ref, baseDisk.vdi),
    targetBaseVdi: objectRef(targetDisk.ref, targetDisk.vdi),
  }
}

function fullDisks(liveDisks: readonly PlanDisk[], reason: FullReason): DiskPlan[] {
  return liveDisks.map(live => ({
    vdi: objectRef(live.ref, live.vdi),
    userdevice: live.userdevice,
    virtualSize: live.vdi.virtual_size,
    mode: 'full',
    reason,
  }))
}

function fullDisk({ vdi, userdevice, virtualSize }: DiskPlan, reason: FullReason): DiskPlan {
  return { vdi, userdevice, virtualSize, mode: 'full', reason }
}
