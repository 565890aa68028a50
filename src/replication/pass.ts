/**
 * One pass of a job: select the VMs, plan each (pure), then apply the plans with up to
 * `concurrency` VMs in parallel. Progress goes out as typed events; the result says, per VM,
 * full or delta, bytes and duration, or why it failed. Nothing is printed.
 */
import { UsageError, isXenCrError } from '../errors.js'
import { RateLimiter } from '../delta/rate-limit.js'
import type { Job, Schedule } from '../jobs/types.js'
import type { XapiClient } from '../xapi/client.js'
import type { VmRecord } from '../xapi/types.js'
import type { PassEventSink, VmResult } from './events.js'
import { executeVm } from './execute-vm.js'
import { REPLICA_TAG } from './metadata.js'
import { planVm, type PlanVm, type PoolRecords, type VmPlan } from './plan.js'
import { fetchPoolRecords } from './records.js'

export interface PassOptions {
  readonly job: Job
  /** which schedule's retention applies and is written as `xo:backup:schedule`; default the first */
  readonly scheduleId?: string
  readonly source: XapiClient
  /** the same client as `source` when replicating within one pool */
  readonly target: XapiClient
  /** only these VMs (each must be selected by the job) */
  readonly vmUuids?: readonly string[]
  /** plan only: nothing is created or deleted */
  readonly dryRun?: boolean
  /** every disk full */
  readonly forceFull?: boolean
  readonly signal?: AbortSignal
  readonly onEvent?: PassEventSink
  readonly now?: () => Date
}

export interface PassResult {
  readonly job: { readonly id: string; readonly name: string }
  readonly scheduleId: string
  readonly dryRun: boolean
  /** the plans of the VMs that could be planned */
  readonly plans: readonly VmPlan[]
  /** one per selected VM (empty on a dry run, except refusals) */
  readonly results: readonly VmResult[]
}

/** The schedule a pass runs under. */
export function scheduleOf(job: Job, scheduleId: string | undefined): Schedule {
  const schedule = scheduleId === undefined ? job.schedules[0] : job.schedules.find(s => s.id === scheduleId)
  if (schedule === undefined) {
    throw new UsageError(
      'SCHEDULE_NOT_FOUND',
      scheduleId === undefined
        ? `job ${job.name} has no schedule; add one with job create`
        : `job ${job.name} has no schedule ${scheduleId}`,
    )
  }
  return schedule
}

/** Refs of the source VMs the job selects: by uuid, by tag, or all — never snapshots, templates, dom0 or replicas. */
export function selectVms(
  job: Job,
  vms: ReadonlyMap<string, PlanVm & { readonly tags: readonly string[]; readonly is_control_domain: boolean }>,
): string[] {
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

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length)
  let next = 0
  const width = limit <= 0 ? items.length : Math.min(limit, items.length)
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++
        results[i] = await fn(items[i]!)
      }
    }),
  )
  return results
}

/**
 * Runs one pass of `o.job` (or only plans it with `dryRun`). Never throws for a VM's failure:
 * each VM gets a result; throws only for what stops the whole pass (unknown schedule, a `--vm`
 * outside the job, an unreachable pool).
 */
export async function runPass(o: PassOptions): Promise<PassResult> {
  const { job, source, target } = o
  const schedule = scheduleOf(job, o.scheduleId)
  const emit: PassEventSink = o.onEvent ?? (() => undefined)
  const now = o.now ?? (() => new Date())
  const opts = o.signal === undefined ? {} : { signal: o.signal }

  const sourceRecords = await fetchPoolRecords(source, opts)
  const targetRecords: PoolRecords = source === target ? sourceRecords : await fetchPoolRecords(target, opts)
  const sourceVms: ReadonlyMap<string, VmRecord> = sourceRecords.vms
  let vmRefs = selectVms(job, sourceVms)
  const missing: VmResult[] = []
  for (const uuid of job.vms.uuids) {
    if (![...sourceVms.values()].some(v => v.uuid === uuid) && (o.vmUuids === undefined || o.vmUuids.includes(uuid))) {
      missing.push({
        status: 'failed',
        vm: { uuid, name: uuid },
        durationMs: 0,
        error: {
          code: 'VM_NOT_FOUND',
          message: `VM ${uuid} of job ${job.name} is not on pool ${job.source}; remove it from the job or check the pool`,
        },
      })
    }
  }
  if (o.vmUuids !== undefined) {
    const wanted = new Set(o.vmUuids)
    for (const uuid of wanted) {
      const selected = vmRefs.some(ref => sourceVms.get(ref)?.uuid === uuid)
      if (!selected && !job.vms.uuids.includes(uuid))
        throw new UsageError(
          'VM_NOT_IN_JOB',
          `VM ${uuid} is not selected by job ${job.name}; check the uuid or the job's VMs`,
        )
    }
    vmRefs = vmRefs.filter(ref => wanted.has(sourceVms.get(ref)?.uuid ?? ''))
  }
  emit({
    kind: 'pass-start',
    job: { id: job.id, name: job.name },
    scheduleId: schedule.id,
    vms: vmRefs.length + missing.length,
  })

  const plans: VmPlan[] = []
  const results: VmResult[] = [...missing]
  for (const result of missing) emit({ kind: 'vm-done', result })
  for (const vmRef of vmRefs) {
    try {
      plans.push(
        planVm({
          job,
          schedule,
          vmRef,
          source: sourceRecords,
          target: targetRecords,
          ...(o.forceFull === undefined ? {} : { forceFull: o.forceFull }),
        }),
      )
    } catch (error) {
      if (!isXenCrError(error)) throw error
      const vm = sourceVms.get(vmRef)
      const result: VmResult = {
        status: 'failed',
        vm: { uuid: vm?.uuid ?? vmRef, name: vm?.name_label ?? vmRef },
        durationMs: 0,
        error: { code: error.code, message: error.message },
      }
      results.push(result)
      emit({ kind: 'vm-done', result })
    }
  }
  if (o.dryRun === true) {
    // No vm-start: nothing starts, and the caller shows the plans as the result.
    return { job: { id: job.id, name: job.name }, scheduleId: schedule.id, dryRun: true, plans, results }
  }

  const limiter = job.maxRate === undefined || job.maxRate <= 0 ? undefined : new RateLimiter(job.maxRate)
  const executed = await mapLimit(plans, job.concurrency, async plan => {
    const vm = { uuid: plan.vm.uuid, name: plan.vm.name }
    emit({ kind: 'vm-start', vm, plan })
    for (const w of plan.warnings) emit({ kind: 'warning', vm, code: w.code, message: w.message })
    const result = await executeVm(
      {
        job,
        source,
        target,
        ...(limiter === undefined ? {} : { limiter }),
        ...(o.signal === undefined ? {} : { signal: o.signal }),
        emit,
        now,
      },
      plan,
    )
    emit({ kind: 'vm-done', result })
    return result
  })
  results.push(...executed)
  emit({ kind: 'pass-done', results })
  return { job: { id: job.id, name: job.name }, scheduleId: schedule.id, dryRun: false, plans, results }
}
