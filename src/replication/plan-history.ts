/**
 * What earlier passes of a job left, read from the records of both pools in any era: its
 * snapshots of the VM on the source (and debris of crashed runs), every VM with its keys on the
 * target (replicas and era-C target snapshots).
 */
import {
  TEMP_SNAPSHOT_NAME,
  datetimeSortKey,
  readReplica,
  readSourceSnapshot,
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
