/**
 * Health check (reference §4, as Xen Orchestra does it): for each chosen VM, its newest complete
 * replica is cloned (or copied onto `sr`), the clone is cut off the network and started, and it
 * passes when its guest tools report — and, in script mode, when the guest writes `success` in
 * XenStore — within one time budget. The clone is destroyed afterwards in every case: pass,
 * failure, timeout, error or abort. The replica itself is never modified.
 */
import { AbortedError, OperationError, ValidationError, isXenCrError } from '../errors.js'
import { CleanupStack } from '../delta/cleanup.js'
import { DEFAULT_HEALTH_CHECK_TIMEOUT_MS, XENSTORE_MODE_TAG } from '../jobs/health-check-setting.js'
import type { Job } from '../jobs/types.js'
import type { XapiClient } from '../xapi/client.js'
import { listVmDisks } from '../xapi/vbd.js'
import { NULL_REF, asRef, type Ref } from '../xapi/types.js'
import { startVm } from '../xapi/vm.js'
import { VERDICT_KEY, awaitGuestTools, awaitRunning, awaitVerdict, formatBudget } from './await-guest.js'
import type { ErrorInfo, HealthCheckEventSink, HealthCheckStep, HealthCheckVmResult } from './check-events.js'
import { chooseReplicas, type ReplicaChoice } from './choose-replica.js'
import { replicaInfo } from './failover.js'
import { groupJobReplicas } from './job-replicas.js'
import { mapLimit } from '../replication/map-limit.js'
import { describeSrFull } from './sr-full.js'
import { makeTestVm, prepareTestVm, testVmName } from './test-vm.js'

// defined with the job's health-check setting, which the CLI's flags describe without loading this module
export { XENSTORE_MODE_TAG }

const DEFAULT_POLL_MS = 1_000

export interface HealthCheckOptions {
  readonly job: Job
  readonly target: XapiClient
  /** source VM uuids or names; default every VM of the job */
  readonly vms?: readonly string[]
  /** SR uuid for the test VM: a replica with a disk elsewhere is copied there; default: clone in place */
  readonly sr?: string
  /** the budget from `VM.start` to the last verdict (default 10 minutes) */
  readonly timeoutMs?: number
  /** script mode for every VM, not only those tagged {@link XENSTORE_MODE_TAG} */
  readonly xenstore?: boolean
  /** VMs checked at once; default the job's concurrency */
  readonly concurrency?: number
  readonly signal?: AbortSignal
  readonly onEvent?: HealthCheckEventSink
  readonly now?: () => Date
  /** how often the VM is looked at while waiting (default 1 s) */
  readonly pollMs?: number
}

export interface HealthCheckResult {
  readonly job: { readonly id: string; readonly name: string }
  /** refused VMs first, then the others in the job's VM order */
  readonly results: readonly HealthCheckVmResult[]
}

function errorInfo(error: unknown): ErrorInfo {
  if (isXenCrError(error)) return { code: error.code, message: error.message }
  return { code: 'UNEXPECTED', message: error instanceof Error ? error.message : String(error) }
}

interface Context {
  readonly o: HealthCheckOptions
  readonly target: XapiClient
  readonly sr: Ref<'SR'> | undefined
  /** the name of `sr`, for messages */
  readonly srName: string | undefined
  readonly timeoutMs: number
  readonly emit: HealthCheckEventSink
}

/** Resolves `--sr` to a ref of the target pool. @throws ValidationError `SR_NOT_FOUND` */
async function resolveSr(o: HealthCheckOptions): Promise<Ref<'SR'> | undefined> {
  if (o.sr === undefined) return undefined
  const wanted = o.sr.toLowerCase()
  const srs = await o.target.getAllRecords('SR', o.signal === undefined ? {} : { signal: o.signal })
  const found = [...srs].find(([, sr]) => sr.uuid === wanted)
  if (found === undefined)
    throw new ValidationError(
      'SR_NOT_FOUND',
      `SR ${o.sr} (health-check SR) is not on target pool "${o.job.target}"; check the uuid (xen-cr srs ${o.job.target})`,
    )
  return found[0]
}

async function checkVm(
  ctx: Context,
  choice: Extract<ReplicaChoice, { status: 'ready' }>,
): Promise<HealthCheckVmResult> {
  const { target, o } = ctx
  const started = Date.now()
  const replica = replicaInfo(choice.replica)
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  const identity = { uuid: choice.vm.uuid ?? choice.vm.name, name: choice.vm.name }
  const name = testVmName(choice.replica.name)
  const step = (s: HealthCheckStep): void => ctx.emit({ kind: 'health-check-step', vm: choice.vm, step: s, name })
  const cleanup = new CleanupStack()
  const reached: { running?: number; tools?: number; verdict?: number } = {}
  let via: 'clone' | 'copy' = 'clone'
  let mode: 'tools' | 'xenstore' = o.xenstore === true ? 'xenstore' : 'tools'
  let clone: { uuid: string; name: string } | undefined
  let error: ErrorInfo | undefined
  try {
    const replicaRef = asRef<'VM'>(choice.replica.ref)
    const record = await target.getRecord('VM', replicaRef, opts)
    if (record.tags.includes(XENSTORE_MODE_TAG)) mode = 'xenstore'
    if (ctx.sr !== undefined) {
      const disks = await listVmDisks(target, record.VBDs, opts)
      if (disks.some(d => d.vdi.SR !== ctx.sr)) via = 'copy'
    }
    step(via === 'clone' ? 'cloning' : 'copying')
    const made = await makeTestVm(target, replicaRef, name, { via, sr: ctx.sr ?? NULL_REF }, cleanup, {
      ...opts,
      onCopyInstead: () =>
        ctx.emit({
          kind: 'warning',
          vm: identity,
          code: 'CLONE_NOT_SUPPORTED',
          message: `SR ${replica.srName} cannot clone; copying the replica's disks in full for the health check`,
        }),
    })
    via = made.via
    const vm = made.vm
    clone = { uuid: (await target.getRecord('VM', vm, opts)).uuid, name }
    await prepareTestVm(target, vm, opts)
    // XO's script reads the key at boot: it must be there before the start.
    if (mode === 'xenstore') await target.setMapEntry('VM', vm, 'xenstore_data', VERDICT_KEY, 'planned', opts)

    step('starting')
    const startAt = Date.now()
    const deadline = startAt + ctx.timeoutMs
    try {
      await startVm(target, vm, { ...opts, timeoutMs: ctx.timeoutMs })
    } catch (startError) {
      if (isXenCrError(startError) && startError.code === 'CALL_TIMEOUT')
        throw new OperationError(
          'HEALTH_CHECK_NOT_RUNNING',
          `VM.start of the health-check VM did not finish within ${formatBudget(ctx.timeoutMs)}`,
          { cause: startError },
        )
      throw startError
    }
    const wait = {
      client: target,
      vm,
      deadline,
      timeoutMs: ctx.timeoutMs,
      pollMs: o.pollMs ?? DEFAULT_POLL_MS,
      ...opts,
    }
    step('running')
    await awaitRunning(wait)
    reached.running = Date.now() - startAt
    step('tools')
    await awaitGuestTools(wait)
    reached.tools = Date.now() - startAt
    if (mode === 'xenstore') {
      step('verdict')
      await awaitVerdict(wait)
      reached.verdict = Date.now() - startAt
    }
  } catch (caught) {
    error =
      o.signal?.aborted === true && !(caught instanceof AbortedError)
        ? errorInfo(new AbortedError('health check aborted', { cause: caught }))
        : (describeSrFull(caught, ctx.srName ?? replica.srName, free =>
            ctx.sr === undefined
              ? `free ${free} on it, or check on another SR with --sr`
              : `free ${free} on it, or choose another SR with --sr`,
          ) ?? errorInfo(caught))
  }
  if (cleanup.size > 0) step('destroying')
  const failures = await cleanup.unwind()
  for (const failure of failures)
    ctx.emit({
      kind: 'warning',
      vm: identity,
      code: 'CLEANUP_FAILED',
      message: `could not remove ${failure.label}${clone === undefined ? '' : ` (${clone.uuid})`}: ${errorInfo(failure.error).message}; remove it by hand`,
    })
  return {
    status: error === undefined ? 'success' : 'failed',
    vm: choice.vm,
    replica,
    clone,
    via,
    mode,
    reached,
    ...(error === undefined ? {} : { error }),
    cleanedUp: failures.length === 0,
    durationMs: Date.now() - started,
  }
}

/** Chooses, then checks the ready VMs with bounded concurrency. Never throws for one VM's failure. */
export async function healthCheck(o: HealthCheckOptions): Promise<HealthCheckResult> {
  const { job, target } = o
  const emit: HealthCheckEventSink = o.onEvent ?? (() => undefined)
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  const sr = await resolveSr(o)
  const [vms, srs] = await Promise.all([target.getAllRecords('VM', opts), target.getAllRecords('SR', opts)])
  const choices = chooseReplicas(groupJobReplicas({ job, vms, srs, now: o.now?.() ?? new Date() }), {
    jobName: job.name,
    ...(o.vms === undefined ? {} : { vms: o.vms }),
  })
  const timeoutMs = o.timeoutMs ?? DEFAULT_HEALTH_CHECK_TIMEOUT_MS
  const jobId = { id: job.id, name: job.name }
  const results: HealthCheckVmResult[] = []
  for (const choice of choices)
    if (choice.status === 'refused')
      results.push({ status: 'refused', vm: choice.vm, error: { code: choice.code, message: choice.message } })
  const ready = choices.filter(c => c.status === 'ready')
  emit({ kind: 'health-check-start', job: jobId, vms: ready.length, timeoutMs })
  for (const result of results) emit({ kind: 'health-check-vm-done', result })
  const srName = sr === undefined ? undefined : (srs.get(sr)?.name_label ?? sr)
  const ctx: Context = { o, target, sr, srName, timeoutMs, emit }
  const done = await mapLimit(ready, o.concurrency ?? job.concurrency, async choice => {
    const result = await checkVm(ctx, choice)
    emit({ kind: 'health-check-vm-done', result })
    return result
  })
  return { job: jobId, results: [...results, ...done] }
}
