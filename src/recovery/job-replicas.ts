/**
 * A job's replicas as the target pool alone shows them — the source may be gone. A replica is
 * provably the job's when its own `xo:backup:job` key says so; nothing else qualifies (failover
 * VMs carry no key, so they never appear). `groupJobReplicas` is pure; `fetchJobReplicas` reads.
 */
import type { Job } from '../jobs/types.js'
import {
  KEYS,
  datetimeSortKey,
  importingName,
  isStartBlocked,
  parseXapiDateTime,
  readReplica,
} from '../replication/metadata.js'
import type { XapiClient } from '../xapi/client.js'

type Strings = Readonly<Record<string, string>>

/** The fields of a target VM record read here. */
export interface ReplicaVmFields {
  readonly uuid: string
  readonly name_label: string
  readonly power_state: string
  readonly is_a_snapshot: boolean
  readonly is_a_template: boolean
  readonly other_config: Strings
  readonly blocked_operations: Strings
  readonly order: number
  readonly start_delay: number
}

export interface SrFields {
  readonly uuid: string
  readonly name_label: string
}

/** The source VM a replica copies; its uuid is unknown only on very old (era A) replicas. */
export interface SourceVm {
  readonly uuid: string | undefined
  readonly name: string
}

export interface JobReplica {
  readonly ref: string
  readonly uuid: string
  readonly name: string
  readonly vm: SourceVm
  readonly srUuid: string | undefined
  readonly srName: string
  /** `xo:backup:datetime`; undefined while importing */
  readonly datetime: string | undefined
  readonly ageMs: number | undefined
  /** false: left by an interrupted pass */
  readonly complete: boolean
  /** start and start_on are still blocked: nobody boots it by mistake */
  readonly protected: boolean
  /**
   * Booted, or its start unblocked (the pass's own test for "not a safe base"): its disks may no
   * longer hold the copy of its datetime.
   */
  readonly started: boolean
  readonly powerState: string
  /** from `xo:backup:deltaChainLength` on the replica (written by xen-cr); unknown for XO's */
  readonly chain: 'full' | 'delta' | 'unknown'
  /** the source's boot order and the delay after its group, as copied onto the replica */
  readonly order: number
  readonly startDelay: number
}

export interface VmReplicas {
  readonly vm: SourceVm
  /** newest first; incomplete ones (no datetime) last */
  readonly replicas: readonly JobReplica[]
}

/**
 * The VM name inside a replica's name: `<VM> - <job> - (<date>)` (xen-cr, XO), else
 * `<VM> (<date>)` (xo-cr-seed), else the whole name; an interrupted replica's `[Importing…]`
 * prefix is dropped. The job may have been renamed since, so a
 * name with another job name in the middle is cut at its first ` - `.
 */
export function sourceVmName(replicaName: string, jobName: string): string {
  const importing = importingName('')
  const name = replicaName.startsWith(importing) ? replicaName.slice(importing.length) : replicaName
  const trailing = /^(.+?) \(\d{8}T[\d:]{6,8}Z\)$/.exec(name)
  if (trailing?.[1] === undefined) return name
  const head = trailing[1]
  if (head.endsWith(` - ${jobName} -`)) return head.slice(0, -` - ${jobName} -`.length)
  const dashed = /^(.+?) - .+ -$/.exec(head)
  return dashed?.[1] ?? head
}

/** Every replica of `job` among `vms`, grouped per source VM (VMs of the job without one included, sorted by name). */
export function groupJobReplicas(input: {
  readonly job: Pick<Job, 'id' | 'name' | 'vms'>
  readonly vms: ReadonlyMap<string, ReplicaVmFields>
  readonly srs: ReadonlyMap<string, SrFields>
  readonly now: Date
}): VmReplicas[] {
  const { job, now } = input
  const srName = (uuid: string | undefined): string =>
    uuid === undefined ? '?' : ([...input.srs.values()].find(sr => sr.uuid === uuid)?.name_label ?? uuid)
  const groups = new Map<string, { vm: SourceVm; replicas: JobReplica[]; named: boolean }>()
  for (const uuid of job.vms.uuids) groups.set(uuid, { vm: { uuid, name: uuid }, replicas: [], named: false })
  for (const [ref, vm] of input.vms) {
    if (vm.is_a_snapshot || vm.is_a_template) continue
    const meta = readReplica(vm)
    if (meta.jobId !== job.id) continue
    const name = sourceVmName(vm.name_label, job.name)
    const key = meta.vmUuid ?? `name:${name}`
    const group = groups.get(key) ?? { vm: { uuid: meta.vmUuid, name }, replicas: [], named: false }
    // The VM's name comes from a complete replica when there is one (the source may be gone).
    if (!group.named) group.vm = { uuid: group.vm.uuid, name }
    group.named ||= meta.complete
    const date = parseXapiDateTime(meta.datetime)
    const chainLength = vm.other_config[KEYS.deltaChainLength]
    group.replicas.push({
      ref,
      uuid: vm.uuid,
      name: vm.name_label,
      vm: group.vm,
      srUuid: meta.srUuid,
      srName: srName(meta.srUuid),
      datetime: meta.datetime,
      ageMs: date === undefined ? undefined : now.getTime() - date.getTime(),
      complete: meta.complete,
      protected: isStartBlocked(vm.blocked_operations),
      started: !isStartBlocked(vm.blocked_operations) || vm.power_state !== 'Halted',
      powerState: vm.power_state,
      chain: chainLength === undefined ? 'unknown' : chainLength === '0' ? 'full' : 'delta',
      order: vm.order,
      startDelay: vm.start_delay,
    })
    groups.set(key, group)
  }
  const out = [...groups.values()].map(({ vm, replicas }) => ({
    vm,
    replicas: replicas
      .map(r => ({ ...r, vm }))
      .sort((a, b) => datetimeSortKey(b.datetime).localeCompare(datetimeSortKey(a.datetime))),
  }))
  return out.sort((a, b) => a.vm.name.localeCompare(b.vm.name))
}

/** Reads the target pool's VMs and SRs and groups the job's replicas. */
export async function fetchJobReplicas(
  job: Pick<Job, 'id' | 'name' | 'vms'>,
  target: XapiClient,
  options: { now?: Date; signal?: AbortSignal } = {},
): Promise<VmReplicas[]> {
  const opts = options.signal === undefined ? {} : { signal: options.signal }
  const [vms, srs] = await Promise.all([target.getAllRecords('VM', opts), target.getAllRecords('SR', opts)])
  return groupJobReplicas({ job, vms, srs, now: options.now ?? new Date() })
}
