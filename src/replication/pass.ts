/**
 * One pass of a job: select the VMs, plan each (pure), then apply the plans with up to
 * `concurrency` VMs in parallel. Progress goes out as typed events; the result says, per VM,
 * full or delta, bytes and duration, or why it failed. Nothing is printed.
 */
import { UsageError, isXenCrError, vmNotFound } from '../errors.js'
import { RateLimiter } from '../delta/rate-limit.js'
import type { Job, Schedule } from '../jobs/types.js'
import type { XapiClient } from '../xapi/client.js'
import { asRef } from '../xapi/types.js'
import type { PassEventSink, VmResult } from './events.js'
import { executeVm } from './execute-vm.js'
import { mapLimit } from './map-limit.js'
import { planVm, type VmPlan } from './plan.js'
import { fetchPoolRecords, type PoolRecordMaps } from './records.js'
import { passVms } from './select-vms.js'

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

/**
 * Runs one pass of `o.job` (or only plans it with `dryRun`). Never throws for a VM's failure:
 * each VM gets a result; throws only for what stops the whole pass (unknown schedule, a `--vm`
 * outside the job, an unreachable pool).
 */
export async function runPass(o: PassOptions): Promise<PassResult> {
  const { job, source, target } = o
  const schedule = scheduleOf(job, o.scheduleId)
  const emit: PassEventSink = o.onEvent ?? (() => undefined)
  const opts = o.signal === undefined ? {} : { signal: o.signal }

  const sourceRecords = await fetchPoolRecords(source, opts)
  const targetRecords = source === target ? sourceRecords : await fetchPoolRecords(target, opts)
  const selected = passVms(job, sourceRecords.vms, o.vmUuids)
  const { vmRefs } = selected
  const missing = selected.missing.map(uuid => missingVm(job, uuid))
  emit({
    kind: 'pass-start',
    job: { id: job.id, name: job.name },
    scheduleId: schedule.id,
    vms: vmRefs.length + missing.length,
  })
  for (const result of missing) emit({ kind: 'vm-done', result })
  const { plans, refused } = planPass(o, schedule, vmRefs, sourceRecords, targetRecords, emit)
  const passJob = { id: job.id, name: job.name }
  // No vm-start on a dry run: nothing starts, and the caller shows the plans as the result.
  if (o.dryRun === true)
    return { job: passJob, scheduleId: schedule.id, dryRun: true, plans, results: [...missing, ...refused] }
  const executed = await executePlans(o, plans, emit)
  const results = [...missing, ...refused, ...executed]
  emit({ kind: 'pass-done', results })
  return { job: passJob, scheduleId: schedule.id, dryRun: false, plans, results }
}

/** The failed result of a VM the job names that is not on the source pool. */
function missingVm(job: Job, uuid: string): VmResult {
  const { code, message } = vmNotFound(
    `${uuid} of job ${job.name}`,
    `pool ${job.source}`,
    'remove it from the job or check the pool',
  )
  return { status: 'failed', vm: { uuid, name: uuid }, durationMs: 0, error: { code, message } }
}

/** The plan of each VM; a VM that cannot be planned gets a failed result (and its `vm-done`) instead. */
function planPass(
  o: PassOptions,
  schedule: Schedule,
  vmRefs: readonly string[],
  source: PoolRecordMaps,
  target: PoolRecordMaps,
  emit: PassEventSink,
): { plans: VmPlan[]; refused: VmResult[] } {
  const plans: VmPlan[] = []
  const refused: VmResult[] = []
  for (const vmRef of vmRefs) {
    try {
      const forceFull = o.forceFull === undefined ? {} : { forceFull: o.forceFull }
      plans.push(planVm({ job: o.job, schedule, vmRef, source, target, ...forceFull }))
    } catch (error) {
      if (!isXenCrError(error)) throw error
      const vm = source.vms.get(asRef<'VM'>(vmRef))
      const result: VmResult = {
        status: 'failed',
        vm: { uuid: vm?.uuid ?? vmRef, name: vm?.name_label ?? vmRef },
        durationMs: 0,
        error: { code: error.code, message: error.message },
      }
      refused.push(result)
      emit({ kind: 'vm-done', result })
    }
  }
  return { plans, refused }
}

/** Applies the plans, `job.concurrency` VMs at a time, under one rate limit shared by every disk. */
async function executePlans(o: PassOptions, plans: readonly VmPlan[], emit: PassEventSink): Promise<VmResult[]> {
  const { job, source, target } = o
  const now = o.now ?? (() => new Date())
  const limiter = job.maxRate === undefined || job.maxRate <= 0 ? undefined : new RateLimiter(job.maxRate)
  const ctx = {
    job,
    source,
    target,
    ...(limiter === undefined ? {} : { limiter }),
    ...(o.signal === undefined ? {} : { signal: o.signal }),
    emit,
    now,
  }
  return mapLimit(plans, job.concurrency, async plan => {
    const vm = { uuid: plan.vm.uuid, name: plan.vm.name }
    emit({ kind: 'vm-start', vm, plan })
    for (const w of plan.warnings) emit({ kind: 'warning', vm, code: w.code, message: w.message })
    const result = await executeVm(ctx, plan)
    emit({ kind: 'vm-done', result })
    return result
  })
}
