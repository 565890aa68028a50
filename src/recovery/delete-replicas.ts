/**
 * Deleting a job's replicas (target) and snapshots (source): `replicas delete` and
 * `job delete --purge`. Only objects whose own `xo:backup:job` key names the job are ever
 * candidates; a replica someone started (or could start) is someone's VM now and is kept unless
 * named explicitly, and a running one is never touched. `planDeletion` is pure.
 */
import { AbortedError, UsageError, ValidationError } from '../errors.js'
import type { Job } from '../jobs/types.js'
import { destroyVmAndDisks } from '../replication/destroy.js'
import { KEYS } from '../replication/metadata.js'
import type { XapiClient } from '../xapi/client.js'
import { asRef } from '../xapi/types.js'
import type { DeletionItem } from './events.js'
import {
  groupJobReplicas,
  type JobReplica,
  type ReplicaVmFields,
  type SourceVm,
  type SrFields,
} from './job-replicas.js'

/** The fields of a source VM record read to find the job's snapshots. */
export interface SnapshotFields {
  readonly uuid: string
  readonly name_label: string
  readonly is_a_snapshot: boolean
  readonly other_config: Readonly<Record<string, string>>
}

export interface PlannedDeletion extends DeletionItem {
  readonly ref: string
}

export interface DeletionPlan {
  readonly delete: readonly PlannedDeletion[]
  readonly keep: readonly (DeletionItem & { readonly reason: string })[]
}

export interface DeletionRequest {
  readonly job: Pick<Job, 'id' | 'name' | 'vms'>
  readonly targetVms: ReadonlyMap<string, ReplicaVmFields>
  readonly targetSrs: ReadonlyMap<string, SrFields>
  /** the source pool's VMs; undefined when it could not be read (its snapshots then stay) */
  readonly sourceVms: ReadonlyMap<string, SnapshotFields> | undefined
  /** source VM uuids or names; default every VM of the job */
  readonly vms?: readonly string[]
  /** exactly this replica (by uuid); no snapshot is deleted */
  readonly replica?: string
  /** every replica of the chosen VMs, and their snapshots on the source */
  readonly all?: boolean
  readonly now: Date
}

function item(replica: JobReplica): PlannedDeletion {
  return {
    side: 'target',
    what: 'replica',
    ref: replica.ref,
    uuid: replica.uuid,
    name: replica.name,
    vm: replica.vm,
    datetime: replica.datetime,
  }
}

/**
 * What a deletion removes and what it keeps.
 * @throws UsageError `NOTHING_CHOSEN`, `VM_NOT_IN_JOB`; ValidationError `REPLICA_NOT_IN_JOB`, `REPLICA_RUNNING`
 */
export function planDeletion(req: DeletionRequest): DeletionPlan {
  const { job } = req
  const groups = groupJobReplicas({ job, vms: req.targetVms, srs: req.targetSrs, now: req.now })
  if (req.replica !== undefined) {
    const replica = groups.flatMap(g => g.replicas).find(r => r.uuid === req.replica)
    if (replica === undefined)
      throw new ValidationError(
        'REPLICA_NOT_IN_JOB',
        `${req.replica} is not a replica of job ${job.name} on the target pool (no VM with this uuid carries the job's id); nothing deleted`,
      )
    if (replica.powerState !== 'Halted')
      throw new ValidationError(
        'REPLICA_RUNNING',
        `replica ${replica.name} (${replica.uuid}) is ${replica.powerState.toLowerCase()}: someone uses it; shut it down first; nothing deleted`,
      )
    return { delete: [item(replica)], keep: [] }
  }
  if (req.all !== true)
    throw new UsageError('NOTHING_CHOSEN', 'say what to delete: --replica UUID, or --all (with --vm to narrow it)')
  let chosen = groups
  if (req.vms !== undefined) {
    for (const handle of req.vms)
      if (!groups.some(g => g.vm.uuid === handle || g.vm.name === handle))
        throw new UsageError('VM_NOT_IN_JOB', `--vm ${handle}: no VM of job ${job.name} has this uuid or name`)
    chosen = groups.filter(g => req.vms!.some(h => g.vm.uuid === h || g.vm.name === h))
  }
  const toDelete: PlannedDeletion[] = []
  const keep: (DeletionItem & { reason: string })[] = []
  for (const replica of chosen.flatMap(g => g.replicas)) {
    if (replica.powerState !== 'Halted') keep.push({ ...item(replica), reason: `${replica.powerState.toLowerCase()}` })
    else if (!replica.protected)
      keep.push({
        ...item(replica),
        reason: 'its start was unblocked: it may be in use; delete it with --replica if it is not',
      })
    else toDelete.push(item(replica))
  }
  if (req.sourceVms !== undefined) {
    const vmOf = new Map<string, SourceVm>()
    for (const g of chosen) if (g.vm.uuid !== undefined) vmOf.set(g.vm.uuid, g.vm)
    for (const [ref, vm] of req.sourceVms) {
      if (!vm.is_a_snapshot || vm.other_config[KEYS.job] !== job.id) continue
      const vmUuid = vm.other_config[KEYS.vm]
      const owner = vmUuid === undefined ? undefined : vmOf.get(vmUuid)
      // With --vm, only the chosen VMs' snapshots; without, every snapshot of the job.
      if (req.vms !== undefined && owner === undefined) continue
      toDelete.push({
        side: 'source',
        what: 'snapshot',
        ref,
        uuid: vm.uuid,
        name: vm.name_label,
        vm: owner ?? { uuid: vmUuid, name: vmUuid ?? vm.name_label },
        datetime: vm.other_config[KEYS.datetime],
      })
    }
  }
  return { delete: toDelete, keep }
}

export interface DeletionOutcome {
  readonly deleted: readonly DeletionItem[]
  readonly failed: readonly { readonly item: DeletionItem; readonly message: string }[]
}

/** Deletes what the plan says, each VM with its disks; one failure does not stop the others. */
export async function applyDeletion(
  plan: DeletionPlan,
  clients: { readonly target: XapiClient; readonly source: XapiClient | undefined },
  options: { readonly onDeleted?: (item: DeletionItem) => void; readonly signal?: AbortSignal } = {},
): Promise<DeletionOutcome> {
  const deleted: DeletionItem[] = []
  const failed: { item: DeletionItem; message: string }[] = []
  for (const entry of plan.delete) {
    if (options.signal?.aborted === true) throw new AbortedError('deletion aborted; what is listed as deleted is gone')
    const client = entry.side === 'target' ? clients.target : clients.source
    if (client === undefined) continue
    try {
      await destroyVmAndDisks(client, asRef<'VM'>(entry.ref))
      const { ref: _ref, ...done } = entry
      deleted.push(done)
      options.onDeleted?.(done)
    } catch (error) {
      failed.push({ item: entry, message: error instanceof Error ? error.message : String(error) })
    }
  }
  return { deleted, failed }
}
