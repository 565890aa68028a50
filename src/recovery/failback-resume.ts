/**
 * After a failback, the job must go on with a delta, not a full. A pass needs a snapshot of the
 * job on the source VM whose copy sits, complete and protected, on the target SR. Both exist
 * already, for free: the failed-back VM's disks now hold exactly what the failback snapshot of
 * the failed-over VM holds (proved byte for byte by the tests), and that snapshot is on the
 * target pool. So: snapshot the failed-back VM as the job does, and make a replica on the target
 * from `VDI.clone`s of the failback snapshot's disks — no byte travels. The next pass sends only
 * what the VM writes after the failback.
 */
import type { CleanupStack } from '../delta/cleanup.js'
import { finaliseReplica } from '../delta/finalise-replica.js'
import { createReplicaVm, type ReplicaDiskSpec } from '../delta/import-vm.js'
import type { DeltaVmMetadata } from '../delta/vm-metadata.js'
import type { ReplicaVifWarning } from '../delta/replica-vifs.js'
import {
  KEYS,
  PLACEHOLDER_DATETIME,
  RECOVERY_KEYS,
  contentKeyOf,
  exportedKeys,
  formatXapiDateTime,
  replicaCompleteKeys,
  replicaName,
  replicaVdiKeys,
  replicaVmKeys,
  type PassIdentity,
} from '../replication/metadata.js'
import { REPLICA_POLICY } from '../replication/replica-policy.js'
import { takeJobSnapshot } from '../replication/take-job-snapshot.js'
import type { XapiClient } from '../xapi/client.js'
import { asRef, type Ref } from '../xapi/types.js'
import { listVmDisks } from '../xapi/vbd.js'
import { setVdiOtherConfig } from '../xapi/vdi.js'
import { setVmOtherConfig } from '../xapi/vm.js'
import type { JobResume } from './failback-events.js'

export interface ResumeJobOptions {
  readonly source: XapiClient
  readonly target: XapiClient
  readonly job: {
    readonly id: string
    readonly name: string
    readonly srs: readonly string[]
    readonly networkMap: Readonly<Record<string, string>>
  }
  readonly scheduleId: string
  /** the failed-back VM on the source pool, halted, its disks as the failback left them */
  readonly vm: { readonly ref: Ref<'VM'>; readonly uuid: string; readonly name: string }
  /** the failback snapshot on the target pool, whose disks hold the same bytes */
  readonly failbackSnapshot: DeltaVmMetadata
  /** the replica the failed-over VM came from: its SR gets the new replica */
  readonly replicaSr: { readonly ref: string; readonly uuid: string }
  /** `xo:backup:deltaChainLength` of the new snapshot and replica */
  readonly deltaChainLength: number
  readonly at: Date
  readonly cleanup: CleanupStack
  readonly signal: AbortSignal
  readonly warn: (code: ReplicaVifWarning | 'RESUME_FULL', message: string) => void
}

/** Leaves the job a base for its next delta; everything made is registered on `o.cleanup`. */
export async function resumeJob(o: ResumeJobOptions): Promise<JobResume> {
  const { source, target, job, signal } = o
  const opts = { signal }
  const id: PassIdentity = { jobId: job.id, scheduleId: o.scheduleId, vmUuid: o.vm.uuid }
  const copied = o.failbackSnapshot.disks
  const live = await listVmDisks(source, (await source.getRecord('VM', o.vm.ref, opts)).VBDs, opts)
  // Each disk of the VM must have its bytes in one disk of the failback snapshot, on a job SR.
  const paired =
    live.length === copied.length && live.every(d => copied.some(c => c.vbd.userdevice === d.vbd.userdevice))
  const onSr = job.srs.includes(o.replicaSr.uuid) && copied.every(d => d.vdi.SR === o.replicaSr.ref)
  const fullOn = paired && onSr ? job.srs.filter(sr => sr !== o.replicaSr.uuid) : job.srs
  if (fullOn.length > 0)
    o.warn(
      'RESUME_FULL',
      `no copy of ${o.vm.name} as failed back on SR${fullOn.length === 1 ? '' : 's'} ${fullOn.join(', ')} of job ${job.name}: its next pass sends a full copy there`,
    )
  if (!paired || !onSr) return { replicas: [], fullOn }

  const snapshot = await takeJobSnapshot(source, o.vm.ref, {
    id,
    jobName: job.name,
    vmName: o.vm.name,
    at: o.at,
    cleanup: o.cleanup,
    signal,
  })
  const snapshotUuid = snapshot.metadata.vm.uuid
  const disks: ReplicaDiskSpec[] = snapshot.metadata.disks.map(disk => ({
    disk,
    cloneOf: copied.find(d => d.vbd.userdevice === disk.vbd.userdevice)!.vdiRef,
    otherConfig: replicaVdiKeys(
      id,
      o.replicaSr.uuid,
      { vdiUuid: disk.vdi.uuid, contentKey: contentKeyOf(disk.vdi) },
      PLACEHOLDER_DATETIME,
    ),
  }))
  const name = replicaName(o.vm.name, job.name, o.at)
  const created = await createReplicaVm({
    target,
    metadata: snapshot.metadata,
    sr: asRef<'SR'>(o.replicaSr.ref),
    name,
    otherConfig: replicaVmKeys(id, o.replicaSr.uuid, snapshotUuid, PLACEHOLDER_DATETIME),
    disks,
    policy: REPLICA_POLICY,
    networkMap: job.networkMap,
    cleanup: o.cleanup,
    signal,
    warn: o.warn,
  })
  // the clones carry the failover VM's origin key: it belongs to that VM, not to a replica
  for (const vdi of created.vdis)
    await setVdiOtherConfig(target, vdi, { [RECOVERY_KEYS.failoverReplicaVdi]: null }, opts)
  await setVmOtherConfig(target, created.vm, { [KEYS.deltaChainLength]: String(o.deltaChainLength) }, opts)
  await finaliseReplica({
    target,
    vm: created.vm,
    name,
    vdis: created.vdis.map((ref, i) => ({ ref, name: disks[i]!.disk.vdi.name_label })),
    policy: REPLICA_POLICY,
    completeKeys: replicaCompleteKeys(formatXapiDateTime(o.at)),
    signal,
  })
  const replica = await target.getRecord('VM', created.vm, opts)
  // As after a pass: the snapshot is a base only once its copy is complete.
  await setVmOtherConfig(source, snapshot.ref, exportedKeys(o.deltaChainLength), opts)
  for (const disk of snapshot.metadata.disks)
    await setVdiOtherConfig(source, disk.vdiRef, exportedKeys(o.deltaChainLength), opts)
  return {
    snapshot: { uuid: snapshotUuid, name: snapshot.name },
    replicas: [{ uuid: replica.uuid, name, srUuid: o.replicaSr.uuid }],
    fullOn,
  }
}
