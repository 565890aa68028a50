/**
 * The base of one SR's replica: the newest exported snapshot of the job whose copy on the SR is
 * a safe replica, and per disk full or delta on top of it — or full for the whole VM when there
 * is none, the job's full interval is due, or a full copy is forced.
 */
import { IMPORTING_BLOCKED_MESSAGE, KEYS, replicaBelongsTo, type PassIdentity } from './metadata.js'
import type { JobSnapshot, TargetVm } from './plan-history.js'
import { disksOf, objectRef, type ObjectRef, type PlanDisk, type PlanVm, type PoolRecords } from './plan-records.js'

/** A recoverable oddity found while planning; the pass goes on. */
export interface PlanWarning {
  readonly code: 'REPLICA_NOT_SAFE_BASE' | 'BASE_MISSING_ON_TARGET' | 'BASE_SNAPSHOT_GONE' | 'DISK_WITHOUT_BASE'
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
  /** templates on the target carrying a job's keys: seeds imported from an XVA (`keyedTemplates`) */
  readonly templates: readonly TargetVm[]
  /** every target VM carrying a job's keys, any job: only read to explain why there is no base */
  readonly keyed: readonly TargetVm[]
  readonly identity: PassIdentity
  readonly srRef: string
  readonly srUuid: string
  readonly srName: string
  readonly target: PoolRecords
  readonly fullInterval: number
  readonly forceFull: boolean
}

export interface SrBase {
  /**
   * the snapshot and its replica the deltas go on top of; absent when every disk is full.
   * `adopt`: the replica is a seeded template, to be made a protected VM before the transfer.
   */
  readonly base?: { readonly snapshot: JobSnapshot; readonly replica: TargetVm; readonly adopt: boolean }
  readonly disks: readonly DiskPlan[]
  readonly warnings: readonly PlanWarning[]
}

/** Chooses the base on one SR and plans its disks. */
export function planSrBase(input: SrBaseInput): SrBase {
  const warnings: PlanWarning[] = []
  const rejections: PlanWarning[] = []
  const found = input.forceFull ? undefined : findBase(input, warnings, rejections)
  if (found === undefined) {
    const reason: FullReason = input.forceFull ? 'forced' : 'no-base'
    // One line naming the real reason: an unsafe replica already said why; otherwise the
    // newest candidate's rejection, or the copy whose source snapshot is gone.
    const why = reason === 'no-base' && warnings.length === 0 ? (rejections[0] ?? baseSnapshotGone(input)) : undefined
    if (why !== undefined) warnings.push(why)
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
  return {
    base: { snapshot: found.snapshot, replica: found.replica, adopt: found.adopt },
    disks: found.disks,
    warnings,
  }
}

interface FoundBase {
  readonly snapshot: JobSnapshot
  readonly replica: TargetVm
  readonly adopt: boolean
  readonly disks: readonly DiskPlan[]
}

/**
 * The newest candidate with a complete, safe copy on the SR that gives at least one disk a delta:
 * a replica, else a seeded template of this job (adopted). Why each candidate was passed over
 * goes to `rejections`, newest first.
 */
function findBase(input: SrBaseInput, warnings: PlanWarning[], rejections: PlanWarning[]): FoundBase | undefined {
  for (const snapshot of input.candidates) {
    const replica = input.mine.find(t => t.meta.copyOf === snapshot.vm.uuid && t.meta.complete)
    const template = replica === undefined ? input.templates.find(t => t.meta.copyOf === snapshot.vm.uuid) : undefined
    const copy = replica ?? template
    if (copy === undefined) {
      rejections.push(noCopy(input, snapshot))
      continue
    }
    if (template !== undefined) {
      const refused = unadoptable(input, template)
      if (refused !== undefined) {
        rejections.push(missing(input, snapshot, refused))
        continue
      }
    } else {
      const unsafe = unsafeBase(copy, input.srName)
      if (unsafe !== undefined) {
        warnings.push(unsafe)
        continue
      }
    }
    const replicaDisks = disksOf(copy.vm, input.target)
    const disks = input.liveDisks.map(live => diskOnBase(live, snapshot, replicaDisks, input.srRef))
    if (disks.some(d => d.mode === 'delta')) return { snapshot, replica: copy, adopt: template !== undefined, disks }
    rejections.push(
      missing(
        input,
        snapshot,
        `${describe(copy)} has no disk on SR ${input.srName} whose xo:copy_of names a disk of the snapshot (disk keys missing)`,
      ),
    )
  }
  return undefined
}

const describe = (t: TargetVm): string =>
  `${t.vm.is_a_template ? 'template' : 'copy'} ${t.vm.name_label} (${t.vm.uuid})`

function missing(input: SrBaseInput, snapshot: JobSnapshot, why: string): PlanWarning {
  return {
    code: 'BASE_MISSING_ON_TARGET',
    message: `no usable copy of snapshot ${snapshot.vm.name_label} (${snapshot.vm.uuid}) of VM ${input.vm.name_label} on SR ${input.srName}: ${why}; sending a full copy`,
  }
}

/** Why no VM of this job's on the SR is a copy of `snapshot`, from what the target holds. */
function noCopy(input: SrBaseInput, snapshot: JobSnapshot): PlanWarning {
  const uuid = snapshot.vm.uuid
  const interrupted = input.mine.find(t => t.meta.copyOf === uuid)
  if (interrupted !== undefined)
    return missing(input, snapshot, `${describe(interrupted)} is incomplete (its import was interrupted)`)
  const copies = [...input.keyed, ...input.templates].filter(t => t.meta.copyOf === uuid)
  const ownedBy = (t: TargetVm): boolean =>
    t.meta.jobId === input.identity.jobId || t.meta.scheduleId === input.identity.scheduleId
  const elsewhere = copies.find(t => ownedBy(t) && t.meta.srUuid !== input.srUuid)
  if (elsewhere !== undefined)
    return missing(
      input,
      snapshot,
      `${describe(elsewhere)} is on SR ${elsewhere.meta.srUuid ?? 'unknown'}, not this one`,
    )
  const foreign = copies.find(t => !ownedBy(t))
  if (foreign !== undefined)
    return missing(
      input,
      snapshot,
      `${describe(foreign)} carries job ${foreign.meta.jobId ?? 'none'} / schedule ${foreign.meta.scheduleId ?? 'none'}, not ${input.identity.jobId} / ${input.identity.scheduleId}`,
    )
  const otherVm = copies.find(t => t.meta.vmUuid !== undefined && t.meta.vmUuid !== input.identity.vmUuid)
  if (otherVm !== undefined)
    return missing(input, snapshot, `${describe(otherVm)} carries xo:backup:vm ${otherVm.meta.vmUuid ?? ''}`)
  return missing(
    input,
    snapshot,
    `no VM or template carries xo:copy_of=${uuid} (seed the imported copy with xen-cr seed or xo-cr-seed)`,
  )
}

/**
 * A seeded template is adopted only when it carries this job's keys for this SR and VM and its
 * start is blocked, as a seed tool leaves it: anything else may be someone's template.
 */
function unadoptable(input: SrBaseInput, t: TargetVm): string | undefined {
  if (!replicaBelongsTo(t.meta, input.identity, input.srUuid, 'job')) {
    if (t.meta.jobId !== input.identity.jobId && t.meta.scheduleId !== input.identity.scheduleId)
      return `${describe(t)} carries job ${t.meta.jobId ?? 'none'} / schedule ${t.meta.scheduleId ?? 'none'}, not ${input.identity.jobId} / ${input.identity.scheduleId}`
    if (t.meta.srUuid !== input.srUuid)
      return `${describe(t)} carries xo:backup:sr ${t.meta.srUuid ?? 'none'}, not this SR`
    return `${describe(t)} carries xo:backup:vm ${t.meta.vmUuid ?? ''}, not VM ${input.identity.vmUuid}`
  }
  if (!t.meta.complete) return `${describe(t)} has no xo:backup:datetime (the seed did not complete)`
  const start = t.vm.blocked_operations['start']
  if (start === undefined || start === IMPORTING_BLOCKED_MESSAGE)
    return `${describe(t)} does not have its start blocked, as a seed leaves it`
  if (t.vm.power_state !== 'Halted') return `${describe(t)} is ${t.vm.power_state}`
  return undefined
}

/**
 * A complete copy of this job's on the SR whose source snapshot is no longer a candidate: the
 * snapshot was deleted on the source (or never marked exported), so nothing can be sent as a delta.
 */
function baseSnapshotGone(input: SrBaseInput): PlanWarning | undefined {
  const orphan = [...input.mine, ...input.templates.filter(t => unadoptable(input, t) === undefined)].find(
    t => t.meta.complete && t.meta.copyOf !== undefined,
  )
  if (orphan === undefined) return undefined
  return {
    code: 'BASE_SNAPSHOT_GONE',
    message: `${describe(orphan)} on SR ${input.srName} is a copy of snapshot ${orphan.meta.copyOf ?? ''}, which is gone on the source (or was never marked exported); sending a full copy`,
  }
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
