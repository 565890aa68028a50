/**
 * Where every VM of a job stands, read from the pools (no local state): its replicas per SR
 * (name, datetime, age, chain kind), the age of the newest complete one against the schedule's
 * RPO, and a status. `buildListing` is pure; `listReplicas` fetches the records.
 */
import { intervalGraceMs, schedulePeriodMs } from '../jobs/schedule.js'
import type { Job } from '../jobs/types.js'
import type { XapiClient } from '../xapi/client.js'
import { KEYS, datetimeSortKey, isStartBlocked, parseXapiDateTime, readReplica, replicaBelongsTo } from './metadata.js'
import { selectVms } from './select-vms.js'

export interface ReplicaEntry {
  readonly uuid: string
  readonly name: string
  readonly srUuid: string
  readonly srName: string
  readonly scheduleId: string | undefined
  /** `xo:backup:datetime`; undefined while importing */
  readonly datetime: string | undefined
  readonly ageMs: number | undefined
  /** from `xo:backup:deltaChainLength` on the replica (written by xen-cr); unknown for XO's */
  readonly chain: 'full' | 'delta' | 'unknown'
  /** false: left by an interrupted pass (removed by the next successful one) */
  readonly complete: boolean
}

export type VmStatus = 'ok' | 'late' | 'never'

export interface VmListing {
  readonly vm: { readonly uuid: string; readonly name: string }
  /** newest first */
  readonly replicas: readonly ReplicaEntry[]
  /** age of the newest complete replica on the SR where it is oldest; undefined when an SR has none */
  readonly ageMs: number | undefined
  readonly status: VmStatus
}

export interface JobListing {
  readonly job: { readonly id: string; readonly name: string; readonly enabled: boolean }
  /** the shortest schedule period: how old a replica may be */
  readonly rpoMs: number
  readonly vms: readonly VmListing[]
}

interface VmLike {
  readonly uuid: string
  readonly name_label: string
  readonly is_a_snapshot: boolean
  readonly is_a_template: boolean
  readonly is_control_domain: boolean
  readonly power_state: string
  readonly snapshot_of: string
  readonly other_config: Readonly<Record<string, string>>
  readonly blocked_operations: Readonly<Record<string, string>>
  readonly VBDs: readonly string[]
  readonly tags: readonly string[]
}

export interface ListingInput {
  readonly job: Job
  readonly targetVms: ReadonlyMap<string, VmLike>
  readonly targetSrs: ReadonlyMap<string, { readonly uuid: string; readonly name_label: string }>
  /** the source pool's VMs, to list VMs that have no replica yet; optional */
  readonly sourceVms?: ReadonlyMap<string, VmLike>
  readonly now: Date
}

/** The VM name inside a replica name `<VM> - <job> - (<date>)`, for VMs the source no longer shows. */
function vmNameFromReplica(name: string, jobName: string): string {
  const suffix = ` - ${jobName} - (`
  const at = name.lastIndexOf(suffix)
  return at > 0 ? name.slice(0, at) : name
}

export function buildListing(input: ListingInput): JobListing {
  const { job, now } = input
  const rpoMs = Math.min(...job.schedules.map(s => schedulePeriodMs(s.timing, now)))
  const srName = (uuid: string): string =>
    [...input.targetSrs.values()].find(sr => sr.uuid === uuid)?.name_label ?? uuid
  const byVm = new Map<string, { name: string; replicas: ReplicaEntry[] }>()
  if (input.sourceVms !== undefined) {
    for (const ref of selectVms(job, input.sourceVms)) {
      const vm = input.sourceVms.get(ref)!
      byVm.set(vm.uuid, { name: vm.name_label, replicas: [] })
    }
  }
  for (const vm of input.targetVms.values()) {
    if (vm.is_a_snapshot || vm.is_a_template || !isStartBlocked(vm.blocked_operations)) continue
    const meta = readReplica(vm)
    if (meta.vmUuid === undefined || meta.srUuid === undefined) continue
    if (!replicaBelongsTo(meta, { jobId: job.id, scheduleId: '', vmUuid: meta.vmUuid }, meta.srUuid, 'job')) continue
    const date = parseXapiDateTime(meta.datetime)
    const chainLength = vm.other_config[KEYS.deltaChainLength]
    const entry: ReplicaEntry = {
      uuid: vm.uuid,
      name: vm.name_label,
      srUuid: meta.srUuid,
      srName: srName(meta.srUuid),
      scheduleId: meta.scheduleId,
      datetime: meta.datetime,
      ageMs: date === undefined ? undefined : now.getTime() - date.getTime(),
      chain: chainLength === undefined ? 'unknown' : chainLength === '0' ? 'full' : 'delta',
      complete: meta.complete,
    }
    const slot = byVm.get(meta.vmUuid) ?? { name: vmNameFromReplica(vm.name_label, job.name), replicas: [] }
    slot.replicas.push(entry)
    byVm.set(meta.vmUuid, slot)
  }
  const vms: VmListing[] = [...byVm].map(([uuid, { name, replicas }]) => {
    replicas.sort((a, b) => datetimeSortKey(b.datetime).localeCompare(datetimeSortKey(a.datetime)))
    // The VM is as fresh as its stalest SR: each SR must hold a recent copy.
    let ageMs: number | undefined
    for (const sr of job.srs) {
      const newest = replicas.find(r => r.srUuid === sr && r.complete)
      if (newest?.ageMs === undefined) {
        ageMs = undefined
        break
      }
      ageMs = Math.max(ageMs ?? 0, newest.ageMs)
    }
    const status: VmStatus = ageMs === undefined ? 'never' : ageMs <= rpoMs + intervalGraceMs(rpoMs) ? 'ok' : 'late'
    return { vm: { uuid, name }, replicas, ageMs, status }
  })
  vms.sort((a, b) => a.vm.name.localeCompare(b.vm.name))
  return { job: { id: job.id, name: job.name, enabled: job.enabled }, rpoMs, vms }
}

/** Reads the target (and, when given, the source) and builds the job's listing. */
export async function listReplicas(
  job: Job,
  target: XapiClient,
  options: { source?: XapiClient; now?: Date; signal?: AbortSignal } = {},
): Promise<JobListing> {
  const opts = options.signal === undefined ? {} : { signal: options.signal }
  const [targetVms, targetSrs, sourceVms] = await Promise.all([
    target.getAllRecords('VM', opts),
    target.getAllRecords('SR', opts),
    options.source === undefined ? undefined : options.source.getAllRecords('VM', opts),
  ])
  return buildListing({
    job,
    targetVms,
    targetSrs,
    ...(sourceVms === undefined ? {} : { sourceVms }),
    now: options.now ?? new Date(),
  })
}

/**
 * When each schedule of the job last produced a complete replica, read from the target: for
 * every VM and SR its newest replica of that schedule, and the oldest of those (a schedule is
 * only as recent as its stalest copy). Undefined when it has none.
 */
export function lastReplicaDates(job: Job, targetVms: ReadonlyMap<string, VmLike>): Map<string, Date | undefined> {
  const out = new Map<string, Date | undefined>()
  for (const schedule of job.schedules) {
    const newest = new Map<string, string>()
    for (const vm of targetVms.values()) {
      if (vm.is_a_snapshot || vm.is_a_template || !isStartBlocked(vm.blocked_operations)) continue
      const meta = readReplica(vm)
      if (!meta.complete || meta.vmUuid === undefined || meta.srUuid === undefined || meta.datetime === undefined)
        continue
      if (
        !replicaBelongsTo(
          meta,
          { jobId: job.id, scheduleId: schedule.id, vmUuid: meta.vmUuid },
          meta.srUuid,
          'schedule',
        )
      )
        continue
      const key = `${meta.vmUuid}/${meta.srUuid}`
      const sortKey = datetimeSortKey(meta.datetime)
      if ((newest.get(key) ?? '') < sortKey) newest.set(key, sortKey)
    }
    const oldest = [...newest.values()].sort()[0]
    out.set(schedule.id, oldest === undefined ? undefined : parseXapiDateTime(oldest))
  }
  return out
}
