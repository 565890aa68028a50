/**
 * Failover: for each chosen VM of a job, clone its replica into a new, ordinary VM on the target
 * pool and start it — in the source's start order, with bounded concurrency. Only the target
 * pool is read or written, so it works with the source pool gone. The replica itself is never
 * modified (a clone is made, and only the clone is changed); a VM whose clone could not be
 * finished or started leaves nothing behind.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { AbortedError, isXapiError, isXenCrError } from '../errors.js'
import { CleanupStack } from '../delta/cleanup.js'
import type { Job } from '../jobs/types.js'
import { destroyVmAndDisks } from '../replication/destroy.js'
import type { XapiClient } from '../xapi/client.js'
import { NULL_REF, asRef, type Ref, type SrRecord } from '../xapi/types.js'
import { cloneVm, copyVm, hardShutdownVm, startVm } from '../xapi/vm.js'
import type { FailoverEventSink, FailoverVmResult, ReplicaInfo } from './events.js'
import { DEFAULT_NAME_SUFFIX, planFailover, type FailoverPlan, type ReadyEntry } from './failover-plan.js'
import { groupJobReplicas, type JobReplica } from './job-replicas.js'
import { applyNetworks, markFailoverOrigin, restoreHaSettings, unmarkReplica } from './make-runnable.js'
import { describeSrFull } from './sr-full.js'
import { mapLimit } from '../replication/map-limit.js'
import { resolveNetworkRemap, type NetworkChoice } from './network-remap.js'

export interface FailoverOptions {
  readonly job: Job
  readonly target: XapiClient
  /** source VM uuids or names; default every VM of the job */
  readonly vms?: readonly string[]
  /** the newest replica at or before this instant; default the newest */
  readonly at?: Date
  /** start each VM (default true) */
  readonly start?: boolean
  /** default: keep the replica's networks */
  readonly network?: NetworkChoice
  /** default {@link DEFAULT_NAME_SUFFIX} */
  readonly nameSuffix?: string
  /** VMs set up at once within a start group; default the job's concurrency */
  readonly concurrency?: number
  /** plan only: nothing is created */
  readonly dryRun?: boolean
  readonly signal?: AbortSignal
  readonly onEvent?: FailoverEventSink
  readonly now?: () => Date
}

export interface FailoverResult {
  readonly job: { readonly id: string; readonly name: string }
  readonly dryRun: boolean
  readonly plan: FailoverPlan
  /** one per chosen VM: refused ones, then the others in start order (only refusals on a dry run) */
  readonly results: readonly FailoverVmResult[]
}

export function replicaInfo(replica: JobReplica): ReplicaInfo {
  return {
    uuid: replica.uuid,
    name: replica.name,
    datetime: replica.datetime,
    ageMs: replica.ageMs,
    srUuid: replica.srUuid,
    srName: replica.srName,
  }
}

function errorInfo(error: unknown): { code: string; message: string } {
  if (isXenCrError(error)) return { code: error.code, message: error.message }
  return { code: 'UNEXPECTED', message: error instanceof Error ? error.message : String(error) }
}

interface VmContext {
  readonly target: XapiClient
  readonly jobId: string
  readonly srs: ReadonlyMap<Ref<'SR'>, SrRecord>
  readonly start: boolean
  readonly network: NetworkChoice
  readonly remap: ReadonlyMap<string, string>
  readonly signal: AbortSignal | undefined
  readonly emit: FailoverEventSink
}

/** Plans, then (unless `dryRun`) fails over every ready VM. Never throws for one VM's failure. */
export async function failover(o: FailoverOptions): Promise<FailoverResult> {
  const { job, target } = o
  const emit: FailoverEventSink = o.onEvent ?? (() => undefined)
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  const [vms, srs, networks] = await Promise.all([
    target.getAllRecords('VM', opts),
    target.getAllRecords('SR', opts),
    target.getAllRecords('network', opts),
  ])
  const network = o.network ?? { kind: 'keep' }
  // Bad network names are usage errors: found before anything exists.
  const remap = network.kind === 'map' ? resolveNetworkRemap(network.pairs, networks, job.networkMap) : new Map()
  const targetVmNames = new Set(
    [...vms.values()].filter(v => !v.is_a_snapshot && !v.is_a_template).map(v => v.name_label),
  )
  const plan = planFailover({
    job,
    replicas: groupJobReplicas({ job, vms, srs, now: o.now?.() ?? new Date() }),
    ...(o.vms === undefined ? {} : { vms: o.vms }),
    ...(o.at === undefined ? {} : { at: o.at }),
    nameSuffix: o.nameSuffix ?? DEFAULT_NAME_SUFFIX,
    targetVmNames,
  })
  const results: FailoverVmResult[] = []
  for (const entry of plan.entries) {
    if (entry.status === 'refused')
      results.push({ status: 'refused', vm: entry.vm, error: { code: entry.code, message: entry.message } })
  }
  const jobId = { id: job.id, name: job.name }
  if (o.dryRun === true) return { job: jobId, dryRun: true, plan, results }

  const ready = plan.groups.reduce((n, g) => n + g.entries.length, 0)
  emit({ kind: 'failover-start', job: jobId, vms: ready })
  for (const result of results) emit({ kind: 'failover-vm-done', result })
  const ctx: VmContext = {
    target,
    jobId: job.id,
    srs,
    start: o.start !== false,
    network,
    remap,
    signal: o.signal,
    emit,
  }
  for (const [index, group] of plan.groups.entries()) {
    const done = await mapLimit(group.entries, o.concurrency ?? job.concurrency, async entry => {
      const result = await failoverVm(ctx, entry)
      emit({ kind: 'failover-vm-done', result })
      return result
    })
    results.push(...done)
    const last = index === plan.groups.length - 1
    if (ctx.start && !last && group.startDelayMs > 0 && done.some(r => r.status === 'success')) {
      emit({ kind: 'failover-wait', afterOrder: group.order, delayMs: group.startDelayMs })
      try {
        await sleep(group.startDelayMs, undefined, opts)
      } catch (error) {
        throw o.signal?.aborted === true ? new AbortedError('failover aborted', { cause: error }) : error
      }
    }
  }
  return { job: jobId, dryRun: false, plan, results }
}

/** Can this SR clone disks? When it says nothing, try: the clone's error decides. */
function canClone(srs: ReadonlyMap<Ref<'SR'>, SrRecord>, srUuid: string | undefined): boolean {
  const sr = [...srs.values()].find(s => s.uuid === srUuid)
  return sr === undefined || sr.allowed_operations.length === 0 || sr.allowed_operations.includes('vdi_clone')
}

/** Removes a half-made failover VM, powering it off first if its start got that far. */
async function discard(target: XapiClient, vm: Ref<'VM'>): Promise<void> {
  const record = await target.getRecord('VM', vm)
  if (record.power_state !== 'Halted') await hardShutdownVm(target, vm)
  await destroyVmAndDisks(target, vm)
}

async function failoverVm(ctx: VmContext, entry: ReadyEntry): Promise<FailoverVmResult> {
  const { target } = ctx
  const started = Date.now()
  const replica = replicaInfo(entry.replica)
  const opts = ctx.signal === undefined ? {} : { signal: ctx.signal }
  const vmIdentity = { uuid: entry.vm.uuid ?? entry.vm.name, name: entry.vm.name }
  ctx.emit({ kind: 'failover-vm-start', vm: entry.vm, replica })
  const cleanup = new CleanupStack()
  try {
    const source = asRef<'VM'>(entry.replica.ref)
    const srRef = [...ctx.srs].find(([, s]) => s.uuid === entry.replica.srUuid)?.[0] ?? NULL_REF
    let via: 'clone' | 'copy' = canClone(ctx.srs, entry.replica.srUuid) ? 'clone' : 'copy'
    let vm: Ref<'VM'>
    if (via === 'clone') {
      try {
        vm = await cloneVm(target, source, entry.name, opts)
      } catch (error) {
        // An SR whose driver cannot clone (some LVM and LUN-per-VDI SRs) still copies.
        if (!isXapiError(error, 'SR_OPERATION_NOT_SUPPORTED')) throw error
        ctx.emit({
          kind: 'warning',
          vm: vmIdentity,
          code: 'CLONE_NOT_SUPPORTED',
          message: `SR ${replica.srName} cannot clone; copying the replica's disks in full instead`,
        })
        via = 'copy'
        vm = await copyVm(target, source, entry.name, srRef, opts)
      }
    } else {
      vm = await copyVm(target, source, entry.name, srRef, opts)
    }
    cleanup.defer(`failover VM ${entry.name} (${vm})`, () => discard(target, vm))
    await unmarkReplica(target, vm, opts)
    await restoreHaSettings(target, vm, opts)
    await markFailoverOrigin(target, vm, source, ctx.jobId, opts)
    const vifs = await applyNetworks(target, vm, ctx.network, ctx.remap, opts)
    if (ctx.start) await startVm(target, vm, opts)
    const record = await target.getRecord('VM', vm, opts)
    cleanup.commit()
    return {
      status: 'success',
      vm: entry.vm,
      replica,
      failoverVm: { uuid: record.uuid, name: record.name_label },
      via,
      started: ctx.start,
      vifs,
      durationMs: Date.now() - started,
    }
  } catch (error) {
    const made = cleanup.size > 0
    const failures = await cleanup.unwind()
    for (const failure of failures) {
      ctx.emit({
        kind: 'warning',
        vm: vmIdentity,
        code: 'CLEANUP_FAILED',
        message: `could not remove ${failure.label} after the failed failover: ${errorInfo(failure.error).message}; remove it by hand`,
      })
    }
    const info =
      ctx.signal?.aborted === true && !isXenCrError(error)
        ? errorInfo(new AbortedError())
        : (describeSrFull(
            error,
            replica.srName,
            free => `free ${free} on it (other VMs' disks, or this job's older replicas) and run failover again`,
          ) ?? errorInfo(error))
    const outcome = made && failures.length === 0 ? '; the half-made VM was removed' : ''
    return {
      status: 'failed',
      vm: entry.vm,
      replica,
      error: { code: info.code, message: `${info.message}${outcome}` },
      durationMs: Date.now() - started,
    }
  }
}
