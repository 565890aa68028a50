/** Which replicas of one schedule, SR and VM a successful pass deletes. */
import { datetimeSortKey, isStartBlocked, replicaBelongsTo, type PassIdentity } from './metadata.js'
import type { InPlaceReplica, TargetVm } from './plan-history.js'
import { objectRef, type ObjectRef } from './plan-records.js'

export interface ReplicaRef extends ObjectRef {
  readonly datetime: string | undefined
}

/**
 * Keeps `retention − 1` complete protected replicas, the new one makes `retention`. Replicas
 * whose start was unblocked are someone's VM now (XO #2724): never counted, never deleted.
 * Interrupted replicas are debris (XO PR #10404). `mine` are the job's VMs on this SR.
 * XO's in-place layout (`inPlace`, from `plan-history.ts`): each keyed target snapshot is a copy,
 * the live VM they are snapshots of is not counted (XO's rule) and goes with its last snapshot —
 * left alone it would be a full copy no key ties to the job.
 */
export function replicasToDelete(
  mine: readonly TargetVm[],
  identity: PassIdentity,
  srUuid: string,
  retention: number,
  inPlace: readonly InPlaceReplica[] = [],
): ReplicaRef[] {
  const holders = new Set(inPlace.map(h => h.ref))
  const own = mine.filter(t => !holders.has(t.ref) && (t.vm.is_a_snapshot || isStartBlocked(t.vm.blocked_operations)))
  const complete = own
    .filter(t => t.meta.complete && replicaBelongsTo(t.meta, identity, srUuid, 'schedule'))
    .sort((a, b) => datetimeSortKey(b.meta.datetime).localeCompare(datetimeSortKey(a.meta.datetime)))
  const keep = Math.max(0, retention - 1)
  const doomed = [...complete.slice(keep), ...own.filter(t => !t.meta.complete)]
  const gone = new Set(doomed.map(t => t.ref))
  // after their snapshots, in this order
  const emptied = inPlace.filter(h => h.snapshots.every(s => gone.has(s.ref)))
  return [...doomed, ...emptied].map(t => ({ ...objectRef(t.ref, t.vm), datetime: t.meta.datetime }))
}
