/** Which source VMs a pass (or a listing) covers, from the job's selection and `--vm`. */
import { UsageError } from '../errors.js'
import type { Job } from '../jobs/types.js'
import { REPLICA_TAG } from './metadata.js'
import type { PlanVm } from './plan-records.js'

type SelectableVm = PlanVm & { readonly tags: readonly string[]; readonly is_control_domain: boolean }
/** What selecting reads of a job. */
type Selecting = Pick<Job, 'name' | 'vms'>

/** Refs of the source VMs the job selects: by uuid, by tag, or all — never snapshots, templates, dom0 or replicas. */
export function selectVms(job: Selecting, vms: ReadonlyMap<string, SelectableVm>): string[] {
  const out: string[] = []
  for (const [ref, vm] of vms) {
    if (vm.is_a_snapshot || vm.is_a_template || vm.is_control_domain) continue
    const byUuid = job.vms.uuids.includes(vm.uuid)
    // Replicas carry the source's tags: selecting them by tag or "all" would replicate replicas.
    const isReplica = vm.tags.includes(REPLICA_TAG)
    const byTag = !isReplica && vm.tags.some(t => job.vms.tags.includes(t))
    if (byUuid || byTag || (job.vms.all && !isReplica)) out.push(ref)
  }
  return out
}

export interface PassVms {
  /** the VMs to plan */
  readonly vmRefs: readonly string[]
  /** uuids the job names that are not on the source pool (within `vmUuids` when given) */
  readonly missing: readonly string[]
}

/**
 * The VMs of one pass: the job's selection, narrowed to `vmUuids` when given.
 * @throws UsageError `VM_NOT_IN_JOB` for a uuid of `vmUuids` the job does not select
 */
export function passVms(job: Selecting, vms: ReadonlyMap<string, SelectableVm>, vmUuids?: readonly string[]): PassVms {
  const selected = selectVms(job, vms)
  const present = new Set([...vms.values()].map(v => v.uuid))
  const missing = job.vms.uuids.filter(uuid => !present.has(uuid) && (vmUuids === undefined || vmUuids.includes(uuid)))
  if (vmUuids === undefined) return { vmRefs: selected, missing }
  const wanted = new Set(vmUuids)
  for (const uuid of wanted) {
    if (!selected.some(ref => vms.get(ref)?.uuid === uuid) && !job.vms.uuids.includes(uuid))
      throw new UsageError(
        'VM_NOT_IN_JOB',
        `VM ${uuid} is not selected by job ${job.name}; check the uuid or the job's VMs`,
      )
  }
  return { vmRefs: selected.filter(ref => wanted.has(vms.get(ref)?.uuid ?? '')), missing }
}
