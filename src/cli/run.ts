import type { Command } from 'commander'
import ms from 'ms'
import { LeaseError, UsageError, isXenCrError } from '../errors.js'
import type { Job } from '../jobs/types.js'
import type { PassEventSink, VmResult } from '../replication/events.js'
import { connectJobPools, contextOf, type CliContext } from './context.js'
import { ExitCode, exitCodeFor, worstExitCode } from './exit-codes.js'
import type { DueJobOutcome, DueVmOutcome } from './output/events.js'
import { nameOnce } from './output/name-once.js'
import { healthCheckAfterPass } from './health-check.js'
import type { RunRecorder } from './metrics/run-recorder.js'

interface RunOptions {
  vm?: string[]
  dryRun?: boolean
  due?: boolean
  full?: boolean
  metricsFile?: string
  leaseTime?: string
}

const MIN_LEASE_MS = 1_000

/** `--lease-time`: how long a VM's lease holds unrenewed (renewed every quarter of it). */
function leaseTtlMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const value = ms(text.trim() as ms.StringValue) as number | undefined
  if (value === undefined || !Number.isFinite(value) || value < MIN_LEASE_MS)
    throw new UsageError('INVALID_OPTION', `--lease-time ${text}: expected a duration of at least 1s, e.g. 2m`)
  return value
}

/**
 * What several VM results say for the exit code: 1 when a VM failed; 3 when nothing ran because
 * every VM was another run's (leased elsewhere, or replicated elsewhere since this run started);
 * 0 otherwise (an empty job included).
 */
function exitCodeOfResults(results: readonly VmResult[]): ExitCode {
  if (results.some(r => r.status === 'failed')) return ExitCode.failed
  if (results.length > 0 && results.every(r => r.status === 'skipped')) return ExitCode.lease
  return ExitCode.ok
}

/**
 * One pass of `job` under `scheduleId`. Each VM is replicated only under this run's lease on it
 * in XAPI (`replication/vm-lease.ts`), so that controllers sharing the job never replicate a VM
 * twice; a VM leased elsewhere is skipped. The exit code becomes 1 if any VM failed, 3 if every
 * VM was skipped.
 */
async function passOf(
  context: CliContext,
  job: Job,
  options: RunOptions,
  scheduleId?: string,
  recorder?: RunRecorder,
): Promise<readonly VmResult[]> {
  const results = await passRecorded(context, job, options, scheduleId, recorder)
  if (options.dryRun !== true) context.setExitCode(exitCodeOfResults(results))
  return results
}

async function passRecorded(
  context: CliContext,
  job: Job,
  options: RunOptions,
  scheduleId?: string,
  recorder?: RunRecorder,
  dueSince?: Date,
): Promise<readonly VmResult[]> {
  const recording = recorder?.start(job, options.vm === undefined)
  let results: readonly VmResult[] | undefined
  try {
    const onEvent: PassEventSink = event => {
      recording?.event(event)
      context.output.emit(event)
    }
    results = await passWith(context, job, options, scheduleId, onEvent, dueSince)
    return results
  } finally {
    recording?.end(results !== undefined && !results.some(r => r.status === 'failed'))
  }
}

/** Runs (or plans) the pass; the result of each VM (none for a dry run). */
async function passWith(
  context: CliContext,
  job: Job,
  options: RunOptions,
  scheduleId: string | undefined,
  onEvent: PassEventSink,
  dueSince?: Date,
): Promise<readonly VmResult[]> {
  const { source, target } = await connectJobPools(context, job)
  // the replication engine loads with `run` only, not with the command tree (issue 11, fast start)
  const { runPass } = await import('../replication/pass.js')
  const ttlMs = leaseTtlMs(options.leaseTime)
  const result = await runPass({
    job,
    source,
    target,
    ...(scheduleId === undefined ? {} : { scheduleId }),
    ...(options.vm === undefined ? {} : { vmUuids: options.vm }),
    ...(options.dryRun === true ? { dryRun: true } : {}),
    ...(options.full === true ? { forceFull: true } : {}),
    signal: context.signal,
    vmTimeoutMs: (await context.loadConfig()).timeouts.vmMs,
    ...(context.io.now === undefined ? {} : { now: context.io.now }),
    // a VM another controller replicated after this process started is that run's work, done;
    // under run --due, after the due round began (controllers started together start apart)
    since: earliest(context.io.now?.() ?? new Date(performance.timeOrigin), dueSince),
    ...(ttlMs === undefined ? {} : { leaseTtlMs: ttlMs }),
    onEvent,
    // Inside the leases: no other pass rotates away the replicas while they are cloned.
    whileLeased: async results => {
      if (context.signal.aborted) return
      const replicated = results.filter(r => r.status === 'success').map(r => r.vm.uuid)
      await healthCheckAfterPass(context, job, target, replicated)
    },
  })
  if (result.dryRun)
    context.output.emit({ kind: 'pass-plan', job: result.job, scheduleId: result.scheduleId, plans: result.plans })
  return result.dryRun ? [] : result.results
}

/** A VM's line in `run-due-done`. */
function dueVm(result: VmResult): DueVmOutcome {
  const vm = { uuid: result.vm.uuid, name: result.vm.name }
  if (result.status === 'success') return { ...vm, status: 'success' }
  if (result.status === 'failed')
    return { ...vm, status: 'failed', code: result.error.code, message: result.error.message }
  return { ...vm, status: 'skipped', reason: result.reason, message: result.message }
}

function earliest(a: Date, b: Date | undefined): Date {
  return b === undefined || a.getTime() <= b.getTime() ? a : b
}

/** `run --due`: every enabled job with a due schedule, judged from its replicas on the target. */
async function runDue(context: CliContext, options: RunOptions, recorder?: RunRecorder): Promise<void> {
  const store = await context.jobStore()
  const now = context.io.now?.() ?? new Date()
  const outcomes: DueJobOutcome[] = []
  let exitCode: ExitCode = ExitCode.ok
  for (const job of await store.list()) {
    const outcome = (status: DueJobOutcome['status'], more: Partial<DueJobOutcome> = {}): void => {
      outcomes.push({ id: job.id, name: job.name, status, vms: [], ...more })
    }
    if (!job.enabled) {
      context.output.emit({ kind: 'debug', message: `job "${job.name}" is disabled` })
      outcome('disabled')
      continue
    }
    // One job's unreachable pool must not stop the others: record it and go on.
    try {
      const target = await context.connect(job.target)
      const { dueSchedules } = await import('../replication/due.js')
      const decision = (await dueSchedules(job, target, now, { signal: context.signal })).find(d => d.due)
      if (decision === undefined) {
        context.output.emit({ kind: 'info', message: `job "${job.name}": not due` })
        outcome('not-due')
        continue
      }
      const results = await passRecorded(context, job, options, decision.schedule.id, recorder, decision.since)
      const jobExitCode = exitCodeOfResults(results)
      const status = jobExitCode === ExitCode.failed ? 'failed' : jobExitCode === ExitCode.lease ? 'leased' : 'ok'
      outcome(status, { vms: results.map(dueVm) })
      exitCode = worstExitCode(exitCode, jobExitCode)
    } catch (error) {
      if (!isXenCrError(error) || context.signal.aborted) throw error
      const leased = error instanceof LeaseError
      // its target could not be read: the job did not run when it may have been due
      if (!leased) recorder?.failed(job)
      const jobExitCode = exitCodeFor(error)
      context.output.emit({
        kind: 'error',
        code: error.code,
        message: nameOnce('job', job.name, error.message),
        exitCode: jobExitCode,
      })
      outcome(leased ? 'leased' : 'error', { code: error.code })
      exitCode = worstExitCode(exitCode, jobExitCode)
    }
  }
  // 3 says "nothing done": only when no job ran and a lease kept one from running; a job that
  // ran, even after another was found leased, makes the run's outcome its own.
  const ran = outcomes.some(o => o.status === 'ok' || o.status === 'failed')
  if (exitCode === ExitCode.lease && ran) exitCode = ExitCode.ok
  context.setExitCode(exitCode)
  context.output.emit({ kind: 'run-due-done', jobs: outcomes, exitCode })
}

/** `xen-cr run <job> [--vm UUID]... [--dry-run] [--full]` and `xen-cr run --due`. */
export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('run one pass of a job (also a disabled one), or of every enabled job that is due')
    .argument('[job]', 'job id or name')
    .option('--vm <uuid...>', 'only these VMs of the job')
    .option('--dry-run', 'print the plan (full or delta per disk, base, deletions) and change nothing')
    .option('--full', 'send every disk in full')
    .option(
      '--lease-time <duration>',
      "how long a VM's lease in XAPI holds if this run stops renewing it (renewed every quarter of it)",
      '2m',
    )
    .option('--due', 'every enabled job whose schedule is due (one crontab line runs them all)')
    .option(
      '--metrics-file <file>',
      "write each VM's last pass as Prometheus metrics for node_exporter's textfile collector (not on --dry-run)",
    )
    .action(async (handle: string | undefined, options: RunOptions, command: Command) => {
      const context = contextOf(command)
      if (options.due === true && handle !== undefined)
        throw new UsageError(
          'RUN_DUE_WITH_JOB',
          'run --due runs every due job; drop the job argument, or drop --due to run that job now',
        )
      if (options.due !== true && handle === undefined)
        throw new UsageError('RUN_WITHOUT_JOB', 'name the job to run (xen-cr job list shows them), or pass --due')
      const recorder =
        options.metricsFile === undefined || options.dryRun === true
          ? undefined
          : new (await import('./metrics/run-recorder.js')).RunRecorder(() => context.io.now?.() ?? new Date())
      let failure: { error: unknown } | undefined
      try {
        if (handle === undefined) await runDue(context, options, recorder)
        else await passOf(context, await (await context.jobStore()).get(handle), options, undefined, recorder)
      } catch (error) {
        failure = { error }
      }
      if (recorder !== undefined && options.metricsFile !== undefined) {
        try {
          await recorder.write(context, options.metricsFile)
        } catch (error) {
          if (failure === undefined) throw error
          // the run's own failure is what the exit code and the error line must say
          const message = error instanceof Error ? error.message : String(error)
          context.output.warn(isXenCrError(error) ? error.code : 'UNEXPECTED', message)
        }
      }
      if (failure !== undefined) throw failure.error
    })
}
