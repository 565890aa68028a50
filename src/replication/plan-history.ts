/**
 * What earlier passes of a job left, read from the records of both pools in any era: its
 * snapshots of the VM on the source (and debris of crashed runs), every VM with its keys on the
 * target (replicas and era-C target snapshots).
 */
import {
  IMPORTING_BLOCKED_MESSAGE,
  KEYS,
  TEMP_SNAPSHOT_NAME,
  datetimeSortKey,
  readReplica,
  readSourceSnapshot,
  type PassIdentity,
  type ReplicaMeta,
  type SourceSnapshotMeta,
} from './metadata.js'
import { disksOf, objectRef, type ObjectRef, type PlanDisk, type PlanVm, type PoolRecords } from './plan-records.js'

/** A source snapshot of this job's, with what its keys say. */
export interface JobSnapshot {
  readonly ref: string
  readonly vm: PlanVm
  readonly meta: SourceSnapshotMeta
  readonly disks: readonly PlanDisk[]
}

/** A target VM carrying the keys of some job. */
export interface TargetVm {
  readonly ref: string
  readonly vm: PlanVm
  readonly meta: ReplicaMeta
}

/**
 * This job's snapshots of the live VM `vmRef` (XO `_fetchJobSnapshots`), and the temporary
 * snapshots crashed runs left behind.
 */
export function jobSnapshotsOf(
  source: PoolRecords,
  vmRef: string,
  vm: PlanVm,
  jobId: string,
): { snapshots: JobSnapshot[]; debris: ObjectRef[] } {
  const snapshots: JobSnapshot[] = []
  const debris: ObjectRef[] = []
  for (const [ref, snap] of source.vms) {
    if (!snap.is_a_snapshot || snap.snapshot_of !== vmRef) continue
    if (snap.name_label === TEMP_SNAPSHOT_NAME) {
      debris.push(objectRef(ref, snap))
      continue
    }
    const disks = disksOf(snap, source)
    const meta = readSourceSnapshot(
      snap.other_config,
      disks.map(d => d.vdi.other_config),
    )
    if (meta === undefined || meta.jobId !== jobId) continue
    if (meta.vmUuid !== undefined && meta.vmUuid !== vm.uuid) continue
    snapshots.push({ ref, vm: snap, meta, disks })
  }
  return { snapshots, debris }
}

/** The snapshots whose transfer completed, newest first: the candidate bases. */
export function exportedNewestFirst(snapshots: readonly JobSnapshot[]): JobSnapshot[] {
  return snapshots
    .filter(c => c.meta.exported)
    .sort((a, b) => datetimeSortKey(b.meta.datetime).localeCompare(datetimeSortKey(a.meta.datetime)))
}

/** Every target VM (replica or era-C snapshot) with the keys of a job. */
export function keyedTargetVms(target: PoolRecords): TargetVm[] {
  const out: TargetVm[] = []
  for (const [ref, tvm] of target.vms) {
    if (tvm.is_a_template && !tvm.is_a_snapshot) continue
    const meta = readReplica(tvm)
    if (meta.jobId === undefined && meta.scheduleId === undefined) continue
    out.push({ ref, vm: tvm, meta })
  }
  return out
}

/**
 * Templates on the target carrying the keys of a job: an XVA export of a snapshot imports as a
 * template (XAPI does it), and a seed made by hand or by `xo-cr-seed` 1.0.2 leaves it one. A
 * pass may adopt such a copy as its base (`plan-base.ts`); retention never counts it.
 */
export function keyedTemplates(target: PoolRecords): TargetVm[] {
  const out: TargetVm[] = []
  for (const [ref, tvm] of target.vms) {
    if (!tvm.is_a_template || tvm.is_a_snapshot) continue
    const meta = readReplica(tvm)
    if (meta.jobId === undefined && meta.scheduleId === undefined && meta.copyOf === undefined) continue
    out.push({ ref, vm: tvm, meta })
  }
  return out
}

/**
 * A live replica VM of XO's newest layout (6.3+): one VM updated in place on every run, one
 * target snapshot of it per run carrying the job's keys. After each run XO strips every key but
 * `xo:backup:sr` from the live VM and its disks, so nothing on the VM itself names the job. What
 * proves it is the job's copy is the `snapshot_of` link XAPI set when XO snapshotted it: the
 * job's keyed target snapshots on the SR point at it. XO's retention uses the same link to leave
 * the live VM out of the count. Once its last keyed snapshot is gone, no key and no link says
 * whose it is any more: that is the full copy both tools used to strand.
 */
export interface InPlaceReplica {
  readonly ref: string
  readonly vm: PlanVm
  readonly meta: ReplicaMeta
  /** the job's target snapshots of it (any schedule), newest first */
  readonly snapshots: readonly TargetVm[]
}

/**
 * The live VMs that `mine`'s target snapshots (the job's VMs on one SR) are snapshots of, with
 * those snapshots. A snapshot of a VM that is itself a snapshot or a template is not one.
 */
export function inPlaceReplicas(target: PoolRecords, mine: readonly TargetVm[]): InPlaceReplica[] {
  const byHolder = new Map<string, TargetVm[]>()
  for (const t of mine) {
    if (!t.vm.is_a_snapshot) continue
    const holder = target.vms.get(t.vm.snapshot_of)
    if (holder === undefined || holder.is_a_snapshot || holder.is_a_template) continue
    byHolder.set(t.vm.snapshot_of, [...(byHolder.get(t.vm.snapshot_of) ?? []), t])
  }
  return [...byHolder].map(([ref, snapshots]) => ({
    ref,
    vm: target.vms.get(ref)!,
    meta: readReplica(target.vms.get(ref)!),
    snapshots: snapshots.sort((a, b) =>
      datetimeSortKey(b.meta.datetime).localeCompare(datetimeSortKey(a.meta.datetime)),
    ),
  }))
}

/**
 * The keys to write on an in-place replica that carries none of a job's (XO reset them), so that
 * it stays recognisably the job's copy — to xen-cr and to XO's `listReplicatedVms` alike — once
 * its snapshots are gone: job, schedule, VM and SR of its newest complete keyed snapshot, and that
 * snapshot's datetime (the live VM holds what that snapshot holds: XO only writes it during a run,
 * and a run that stops half-way leaves XO's keys with the placeholder datetime on it). No
 * `xo:copy_of`: a VM XO updates in place is never a base, its snapshots are. Undefined when the VM
 * carries keys already or no snapshot is complete.
 */
export function inPlaceReplicaKeys(holder: InPlaceReplica): Record<string, string> | undefined {
  if (holder.meta.jobId !== undefined || holder.meta.scheduleId !== undefined) return undefined
  const newest = holder.snapshots.find(s => s.meta.complete)
  if (newest === undefined) return undefined
  const { jobId, scheduleId, vmUuid, srUuid, datetime } = newest.meta
  if (jobId === undefined || scheduleId === undefined || vmUuid === undefined || srUuid === undefined) return undefined
  return {
    [KEYS.job]: jobId,
    [KEYS.schedule]: scheduleId,
    [KEYS.vm]: vmUuid,
    [KEYS.sr]: srUuid,
    [KEYS.datetime]: datetime!,
  }
}

/**
 * Copies an interrupted XO run of the job left on the SR without `xo:backup:sr`: XO before 5.96
 * (era A) created the replica VM with the source snapshot's keys (job, schedule, VM, a real
 * datetime) and its start blocked "Importing…", and wrote `xo:backup:sr` only once the copy was
 * complete. XO means to delete these ("previous interrupted copies": this schedule's or job's VMs
 * of this source VM without `xo:backup:sr`) but its call never runs, and without the SR key no
 * pass counts them: a full copy, stranded. Its keys name the job and the VM, and the SR is where
 * every one of its disks is.
 */
export function interruptedCopiesOnSr(
  target: PoolRecords,
  keyed: readonly TargetVm[],
  identity: PassIdentity,
  srRef: string,
): TargetVm[] {
  return keyed.filter(t => {
    const { meta, vm } = t
    if (vm.is_a_snapshot || meta.srUuid !== undefined || meta.complete) return false
    if (meta.jobId !== identity.jobId && meta.scheduleId !== identity.scheduleId) return false
    if (meta.vmUuid !== identity.vmUuid || vm.blocked_operations['start'] !== IMPORTING_BLOCKED_MESSAGE) return false
    const disks = disksOf(vm, target)
    return disks.length > 0 && disks.every(d => d.vdi.SR === srRef)
  })
}
