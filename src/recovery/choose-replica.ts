/**
 * Which replica `verify` and `health-check` look at, per VM of the job: the newest complete one,
 * or exactly `--replica`. Pure: it reads the groups `groupJobReplicas` made from the target pool.
 */
import { UsageError, ValidationError } from '../errors.js'
import type { JobReplica, SourceVm, VmReplicas } from './job-replicas.js'

export type ReplicaChoice =
  | { readonly status: 'ready'; readonly vm: SourceVm; readonly replica: JobReplica }
  | {
      readonly status: 'refused'
      readonly vm: SourceVm
      readonly code: 'NO_REPLICA' | 'NO_COMPLETE_REPLICA'
      readonly message: string
    }

const matches = (vm: SourceVm, handle: string): boolean => vm.uuid === handle || vm.name === handle

/**
 * One choice per chosen VM (every VM of the groups without `vms`), in the groups' order.
 * @throws UsageError `VM_NOT_IN_JOB` for a `vms` handle that names no VM of the job,
 *   `CONFLICTING_OPTIONS` when `replica` belongs to none of `vms`
 * @throws ValidationError `REPLICA_NOT_IN_JOB` when `replica` is no replica of the job
 */
export function chooseReplicas(
  groups: readonly VmReplicas[],
  request: { readonly jobName: string; readonly vms?: readonly string[]; readonly replica?: string },
): ReplicaChoice[] {
  const { jobName } = request
  for (const handle of request.vms ?? [])
    if (!groups.some(g => matches(g.vm, handle)))
      throw new UsageError('VM_NOT_IN_JOB', `--vm ${handle}: no VM of job "${jobName}" has this uuid or name`)
  const chosen = request.vms === undefined ? groups : groups.filter(g => request.vms!.some(h => matches(g.vm, h)))

  if (request.replica !== undefined) {
    const wanted = request.replica.toLowerCase()
    const group = groups.find(g => g.replicas.some(r => r.uuid === wanted))
    const replica = group?.replicas.find(r => r.uuid === wanted)
    if (group === undefined || replica === undefined)
      throw new ValidationError(
        'REPLICA_NOT_IN_JOB',
        `${request.replica} is not a replica of job "${jobName}" on its target pool; xen-cr replicas ${jobName} lists them`,
      )
    if (!chosen.includes(group))
      throw new UsageError(
        'CONFLICTING_OPTIONS',
        `--replica ${request.replica} is a replica of ${group.vm.name}, which --vm does not name`,
      )
    if (!replica.complete)
      return [
        {
          status: 'refused',
          vm: group.vm,
          code: 'NO_COMPLETE_REPLICA',
          message: `replica ${replica.uuid} was left by an interrupted pass; its disks may be half written`,
        },
      ]
    return [{ status: 'ready', vm: group.vm, replica }]
  }

  return chosen.map((group): ReplicaChoice => {
    // groups are newest first, incomplete ones last
    const newest = group.replicas.find(r => r.complete)
    if (newest !== undefined) return { status: 'ready', vm: group.vm, replica: newest }
    if (group.replicas.length === 0)
      return {
        status: 'refused',
        vm: group.vm,
        code: 'NO_REPLICA',
        message: `no replica of job "${jobName}" on the target pool; run the job first`,
      }
    return {
      status: 'refused',
      vm: group.vm,
      code: 'NO_COMPLETE_REPLICA',
      message: `only replicas left by interrupted passes (${group.replicas.length}); run the job again`,
    }
  })
}
