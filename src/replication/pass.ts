/**
 * One pass of a job: select the VMs, plan each (pure), then apply the plans with up to
 * `concurrency` VMs in parallel. Progress goes out as typed events; the result says, per VM,
 * full or delta, bytes and duration, or why it failed. Nothing is printed.
 */
import { setMaxListeners } from 'node:events'
import { AbortedError, OperationError, UsageError, isXenCrError, vmNotFound } from '../errors.js'
import { PassNetworks } from '../delta/pass-networks.js'
import { RateLimiter } from '../delta/rate-limit.js'
import type { Job, Schedule } from '../jobs/types.js'
import type { XapiClient } from '../xapi/client.js'
import { asRef, type Ref } from '../xapi/types.js'
import type { PassEventSink, VmIdentity, VmResult } from './events.js'
import { executeVm, type VmContext } from './execute-vm.js'
import { mapLimit } from './map-limit.js'
import { planVm, type VmPlan } from './plan.js'
import { fetchPassRecords, type PoolRecordMaps } from './records.js'
import { passVms } from './select-vms.js'
import {
  LeaseKeeper,
  acquireVmLease,
  currentOwner,
  describeHolder,
  leaseTiming,
  type LastReplication,
  type LeaseOwner,
  type LeaseRecord,
  type LeaseTiming,
  type VmLease,
} from './vm-lease.js'

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
  /** who takes the VMs' leases (default: this process, with a new run id) */
  readonly leaseOwner?: LeaseOwner
  /** how long a lease holds unrenewed, in ms (default 120 s; renewed every quarter of it) */
  readonly leaseTtlMs?: number
  /**
   * a VM that another run replicated under this schedule, in a pass of the VM that started after
   * this moment, is skipped: that run did this one's work (default: the start of this pass)
   */
  readonly since?: Date
  /** one VM's pass may take this long, ms (its work is then undone, the other VMs go on); 0 or absent: no limit */
  readonly vmTimeoutMs?: number
  /** runs after the last VM, while the pass still holds the VMs' leases (e.g. a health check of the new replicas) */
  readonly whileLeased?: (results: readonly VmResult[]) => Promise<void>
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
  const { job } = o
  const schedule = scheduleOf(job, o.scheduleId)
  const emit: PassEventSink = o.onEvent ?? (() => undefined)
  const since = o.since ?? (o.now ?? (() => new Date()))()

  const fetchedAt = Date.now()
  const { source: sourceRecords, target: targetRecords } = await fetchPassRecords(o)
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
  const passJob = { id: job.id, name: job.name }
  // No vm-start on a dry run: nothing starts, and the caller shows the plans as the result.
  if (o.dryRun === true) {
    const { plans, refused } = planPass(o, schedule, vmRefs, sourceRecords, targetRecords, emit)
    return { job: passJob, scheduleId: schedule.id, dryRun: true, plans, results: [...missing, ...refused] }
  }
  const leased = new LeasedPass(o, schedule, since, emit, { source: sourceRecords, target: targetRecords, fetchedAt })
  try {
    const executed = await leased.run(vmRefs)
    const results = [...missing, ...executed]
    emit({ kind: 'pass-done', results })
    await o.whileLeased?.(results)
    return { job: passJob, scheduleId: schedule.id, dryRun: false, plans: leased.plans, results }
  } finally {
    await leased.release()
  }
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

/** Records read from both pools, and when (wall clock) the read started. */
interface RecordsAt {
  readonly source: PoolRecordMaps
  readonly target: PoolRecordMaps
  readonly fetchedAt: number
}

/**
 * A lease taken over from a run that released it this long before our records were read leaves
 * them current: that run wrote nothing after its release. Covers clock skew between controllers.
 */
const RELEASE_SKEW_MS = 5_000

/**
 * The VMs of a pass, `job.concurrency` at a time under one rate limit shared by every disk, each
 * only while this run holds the job's lease on it (`vm-lease.ts`): a VM leased elsewhere, or
 * replicated elsewhere since this run started, is skipped. Each VM is planned once its lease is
 * held, on records read after the previous holder let go, so that no plan builds on a base
 * another controller rotated away.
 */
class LeasedPass {
  readonly plans: VmPlan[] = []
  readonly #o: PassOptions
  readonly #schedule: Schedule
  readonly #since: number
  readonly #emit: PassEventSink
  readonly #owner: LeaseOwner
  readonly #timing: LeaseTiming
  readonly #keeper: LeaseKeeper
  readonly #leases: VmLease[] = []
  readonly #outcomes = new Map<VmLease, { last?: LastReplication; tidy: boolean }>()
  readonly #ctx: VmContext
  #records: RecordsAt
  #refreshing: Promise<RecordsAt> | undefined

  constructor(o: PassOptions, schedule: Schedule, since: Date, emit: PassEventSink, records: RecordsAt) {
    this.#o = o
    this.#schedule = schedule
    this.#since = since.getTime()
    this.#emit = emit
    this.#records = records
    this.#owner = o.leaseOwner ?? currentOwner()
    this.#timing = leaseTiming(o.leaseTtlMs)
    this.#keeper = new LeaseKeeper(this.#timing)
    const { job, source, target } = o
    const limiter = job.maxRate === undefined || job.maxRate <= 0 ? undefined : new RateLimiter(job.maxRate)
    this.#ctx = {
      job,
      source,
      target,
      ...(limiter === undefined ? {} : { limiter }),
      ...(o.vmTimeoutMs === undefined ? {} : { vmTimeoutMs: o.vmTimeoutMs }),
      emit,
      now: o.now ?? (() => new Date()),
      networks: new PassNetworks(),
    }
  }

  run(vmRefs: readonly string[]): Promise<VmResult[]> {
    return mapLimit(vmRefs, this.#o.job.concurrency, async vmRef => {
      const result = await this.#vm(asRef<'VM'>(vmRef))
      this.#emit({ kind: 'vm-done', result })
      return result
    })
  }

  /** Releases every lease still held, each with the replication it recorded. */
  async release(): Promise<void> {
    const failures = await this.#keeper.releaseAll(lease => this.#outcomes.get(lease) ?? {})
    for (const failure of failures) {
      const message = failure instanceof Error ? failure.message : String(failure)
      this.#emit({
        kind: 'warning',
        code: 'LEASE_RELEASE_FAILED',
        message: `could not release a VM lease (${message}); it runs out by itself within ${Math.round(this.#timing.ttlMs / 1000)} s`,
      })
    }
  }

  async #vm(vmRef: Ref<'VM'>): Promise<VmResult> {
    const { o } = { o: this.#o }
    const record = this.#records.source.vms.get(vmRef)
    const vm: VmIdentity = { uuid: record?.uuid ?? vmRef, name: record?.name_label ?? vmRef }
    const leaseContext = {
      client: o.source,
      vmRef,
      jobId: o.job.id,
      owner: this.#owner,
      timing: this.#timing,
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    }
    let taken
    try {
      // the pass's records show the VM's lease entries: a free lease is claimed without reading them again
      taken = await acquireVmLease(leaseContext, record?.other_config)
    } catch (error) {
      if (!isXenCrError(error)) throw error
      return failed(vm, error)
    }
    if (!taken.acquired) return skipped(vm, 'leased', taken.holder, taken.holder.expires)
    const lease = taken.lease
    const gone = taken.previous
    if (taken.takeover !== undefined && gone !== undefined) {
      const why =
        taken.takeover === 'expired'
          ? `it expired at ${gone.expires} without being released`
          : `its process is gone from this host (the lease held until ${gone.expires})`
      this.#emit({
        kind: 'warning',
        vm,
        code: 'LEASE_TAKEN_OVER',
        message: `took over the lease of ${gone.host}/${gone.pid} (run ${gone.run}): ${why} (a run killed or lost)`,
      })
    }
    this.#leases.push(lease)
    const last = taken.previous?.last
    if (last !== undefined && last.schedule === this.#schedule.id && Date.parse(last.at) > this.#since) {
      await lease.release().catch(() => undefined)
      return skipped(vm, 'replicated', { host: last.host, pid: taken.previous?.pid ?? 0, run: last.run }, last.at)
    }
    // One controller per VM: losing the lease stops this VM only.
    const local = new AbortController()
    setMaxListeners(0, local.signal)
    const onAbort = (): void => local.abort(o.signal?.reason)
    o.signal?.addEventListener('abort', onAbort, { once: true })
    this.#keeper.add(lease, () =>
      local.abort(new OperationError('LEASE_LOST', `the lease on VM ${vm.name} was taken over by another run`)),
    )
    try {
      const records = await this.#recordsAfter(taken.previous)
      let plan: VmPlan
      try {
        const forceFull = o.forceFull === undefined ? {} : { forceFull: o.forceFull }
        plan = planVm({ job: o.job, schedule: this.#schedule, vmRef, ...records, ...forceFull })
      } catch (error) {
        if (!isXenCrError(error)) throw error
        return failed(vm, error)
      }
      this.plans.push(plan)
      const planned = { uuid: plan.vm.uuid, name: plan.vm.name }
      this.#emit({ kind: 'vm-start', vm: planned, plan })
      for (const w of plan.warnings) this.#emit({ kind: 'warning', vm: planned, code: w.code, message: w.message })
      // stopped (signal, lease lost) between taking the lease and here: nothing of the VM's pass exists yet
      if (local.signal.aborted) return failed(vm, lease.lost ? leaseLost(vm) : new AbortedError())
      const started = this.#ctx.now()
      // Tidy: the VM's pass succeeded with no warning and no call of the pass failed meanwhile
      // (a call whose effect is unknown may have made something); the next pass then looks for
      // leftovers in its records only (sweep-leftovers.ts).
      const failedBefore = this.#failedCalls()
      let warned = false
      const emit: PassEventSink = event => {
        if (event.kind === 'warning') warned = true
        this.#emit(event)
      }
      const result = await executeVm(
        { ...this.#ctx, emit, signal: local.signal, records, previousTidy: isTidy(taken.previous) },
        plan,
      )
      const tidy = result.status === 'success' && !warned && this.#failedCalls() === failedBefore
      this.#outcomes.set(lease, {
        tidy,
        ...(result.status === 'success'
          ? {
              last: {
                schedule: this.#schedule.id,
                at: started.toISOString(),
                host: this.#owner.host,
                run: this.#owner.run,
              },
            }
          : {}),
      })
      if (result.status === 'failed' && lease.lost && o.signal?.aborted !== true)
        return { ...result, error: leaseLost(vm) }
      // the run was stopped as a whole (its timeout, SIGINT/SIGTERM): say why, not which call of
      // the VM's pass the abort happened to reach first ("waiting for task … aborted")
      const stopped: unknown = o.signal?.aborted === true ? o.signal.reason : undefined
      if (result.status === 'failed' && result.error.code === 'ABORTED' && stopped instanceof AbortedError)
        return {
          ...result,
          error: { code: 'ABORTED', message: `${stopped.message}: the pass of VM ${vm.name} was cancelled` },
        }
      return result
    } finally {
      o.signal?.removeEventListener('abort', onAbort)
    }
  }

  #failedCalls(): number {
    const { source, target } = this.#o
    return source.failedCalls + (target === source ? 0 : target.failedCalls)
  }

  /** The records to plan on once the lease is held: those read at the start, or newer ones when the previous holder may have written since. */
  #recordsAfter(previous: LeaseRecord | undefined): Promise<{ source: PoolRecordMaps; target: PoolRecordMaps }> {
    const current = this.#records
    const quiet =
      previous === undefined ||
      (previous.released === true && Date.parse(previous.expires) < current.fetchedAt - RELEASE_SKEW_MS)
    if (quiet) return Promise.resolve(current)
    const takenAt = Date.now()
    if (current.fetchedAt >= takenAt) return Promise.resolve(current)
    this.#refreshing ??= this.#refresh().finally(() => (this.#refreshing = undefined))
    return this.#refreshing.then(fresh => (fresh.fetchedAt >= takenAt ? fresh : this.#recordsAfter(previous)))
  }

  async #refresh(): Promise<RecordsAt> {
    const fetchedAt = Date.now()
    const { source: sourceRecords, target: targetRecords } = await fetchPassRecords(this.#o)
    this.#records = { source: sourceRecords, target: targetRecords, fetchedAt }
    return this.#records
  }
}

/** Whether the lease taken over is the tombstone of a run that left the VM tidy. */
function isTidy(previous: LeaseRecord | undefined): boolean {
  return previous?.released === true && previous.tidy === true
}

function leaseLost(vm: VmIdentity): { code: string; message: string } {
  return {
    code: 'LEASE_LOST',
    message: `VM ${vm.name}: another run took its lease over (this run's renewals stalled past the lease time); this pass of it was undone`,
  }
}

function failed(vm: VmIdentity, error: { code: string; message: string }): VmResult {
  return { status: 'failed', vm, durationMs: 0, error: { code: error.code, message: error.message } }
}

function skipped(
  vm: VmIdentity,
  reason: 'leased' | 'replicated',
  holder: { host: string; pid: number; run: string },
  at: string,
): VmResult {
  const who = { host: holder.host, pid: holder.pid, run: holder.run }
  const message =
    reason === 'leased'
      ? `leased by ${describeHolder({ ...who, expires: at })}`
      : `replicated by ${who.host}/${who.pid} in a pass started at ${at}, after this run started`
  return { status: 'skipped', vm, durationMs: 0, reason, holder: who, at, message }
}
