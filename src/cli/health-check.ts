import type { Command } from 'commander'
import { ValidationError } from '../errors.js'
import {
  DEFAULT_HEALTH_CHECK_TIMEOUT_MS,
  XENSTORE_MODE_TAG,
  parseHealthCheckTimeout,
  type HealthCheckInput,
} from '../jobs/health-check-setting.js'
import type { Job } from '../jobs/types.js'
import type { HealthCheckVmResult } from '../recovery/check-events.js'
import type { XapiClient } from '../xapi/client.js'
import { contextOf, type CliContext } from './context.js'
import { ExitCode } from './exit-codes.js'

interface HealthCheckCliOptions {
  vm?: string[]
  sr?: string
  timeout?: string
  xenstore?: boolean
}

/** The health-check flags of `job create` (and `job edit`), as commander parses them. */
export interface HealthCheckFlags {
  healthCheck?: boolean
  healthCheckSr?: string
  healthCheckTimeout?: string
  healthCheckXenstore?: boolean
}

/** Adds the job's health-check flags to `command` (`job create`, `job edit`). */
export function addHealthCheckFlags(command: Command): Command {
  return command
    .option('--health-check', 'after each pass, boot-test a clone of each new replica (xen-cr health-check)')
    .option(
      '--health-check-sr <uuid>',
      'SR for the health-check clone (implies --health-check; default: beside the replica)',
    )
    .option(
      '--health-check-timeout <duration>',
      'budget from start to verdict, e.g. 10m (implies --health-check; default 10m)',
    )
    .option(
      '--health-check-xenstore',
      `wait for the guest script's verdict for every VM, not only those tagged ${XENSTORE_MODE_TAG} (implies --health-check)`,
    )
}

export function healthCheckInput(flags: HealthCheckFlags): HealthCheckInput {
  return {
    enabled: flags.healthCheck,
    sr: flags.healthCheckSr,
    timeout: flags.healthCheckTimeout,
    xenstore: flags.healthCheckXenstore,
  }
}

/** `job edit`: undefined when no health-check flag was given, so the setting stays as it is. */
export function healthCheckEditInput(flags: HealthCheckFlags): HealthCheckInput | undefined {
  const input = healthCheckInput(flags)
  return Object.values(input).every(value => value === undefined) ? undefined : input
}

/** Exit 1 when a check failed or left its clone behind; refusals weigh as in failover (all: 5). */
function applyExitCode(context: CliContext, results: readonly HealthCheckVmResult[]): void {
  const refused = results.filter(r => r.status === 'refused').length
  const bad = results.some(r => r.status === 'failed' || (r.status !== 'refused' && !r.cleanedUp))
  if (bad) context.setExitCode(ExitCode.failed)
  else if (refused > 0) context.setExitCode(refused === results.length ? ExitCode.validation : ExitCode.failed)
}

/**
 * The job setting's health check, run by `xen-cr run` after a pass for the VMs it replicated:
 * its outcome joins the run's events and its exit code (a failed check fails the run).
 */
export async function healthCheckAfterPass(
  context: CliContext,
  job: Job,
  target: XapiClient,
  vmUuids: readonly string[],
): Promise<void> {
  const setting = job.healthCheck
  if (setting === undefined || vmUuids.length === 0) return
  const { healthCheck } = await import('../recovery/health-check.js')
  const result = await healthCheck({
    job,
    target,
    vms: vmUuids,
    ...(setting.sr === undefined ? {} : { sr: setting.sr }),
    timeoutMs: setting.timeoutMs,
    xenstore: setting.xenstore,
    signal: context.signal,
    ...(context.io.now === undefined ? {} : { now: context.io.now }),
    onEvent: event => context.output.emit(event),
  })
  context.output.emit({ kind: 'health-check-done', job: result.job, results: result.results })
  if (result.results.some(r => r.status !== 'success' || !r.cleanedUp)) context.setExitCode(ExitCode.failed)
}

/**
 * `xen-cr health-check <job>`: only the target pool is contacted. Flags override the job's
 * setting, which overrides XO's defaults (clone beside the replica, 10 minutes, script mode
 * for VMs tagged `xo-backup-health-check-xenstore`).
 */
export function registerHealthCheckCommand(program: Command): void {
  program
    .command('health-check')
    .description(
      "boot-test a clone of each VM's newest replica: start it without network, wait for the guest tools (and the guest's verdict), then destroy it",
    )
    .argument('<job>', 'job id or name')
    .option('--vm <uuid-or-name...>', 'only these VMs of the job (source VM uuid or name)')
    .option(
      '--sr <uuid>',
      "SR for the clone; a replica with disks elsewhere is copied there (default: the job's setting, else beside the replica)",
    )
    .option(
      '--timeout <duration>',
      "budget from start to verdict per VM, e.g. 90s, 10m (default: the job's setting, else 10m)",
    )
    .option(
      '--xenstore',
      `wait for the guest script's verdict in vm-data/xo-backup-health-check for every VM (default: VMs tagged ${XENSTORE_MODE_TAG})`,
    )
    .action(async (handle: string, options: HealthCheckCliOptions, command: Command) => {
      const context = contextOf(command)
      const timeoutMs = options.timeout === undefined ? undefined : parseHealthCheckTimeout(options.timeout).timeoutMs
      const job = await (await context.jobStore()).get(handle)
      const setting = job.healthCheck
      const sr = options.sr ?? setting?.sr
      const target = await context.connect(job.target)
      const { healthCheck } = await import('../recovery/health-check.js')
      const result = await healthCheck({
        job,
        target,
        ...(options.vm === undefined ? {} : { vms: options.vm }),
        ...(sr === undefined ? {} : { sr }),
        timeoutMs: timeoutMs ?? setting?.timeoutMs ?? DEFAULT_HEALTH_CHECK_TIMEOUT_MS,
        xenstore: options.xenstore === true || setting?.xenstore === true,
        signal: context.signal,
        ...(context.io.now === undefined ? {} : { now: context.io.now }),
        onEvent: event => context.output.emit(event),
      })
      if (result.results.length === 0)
        throw new ValidationError(
          'NO_REPLICA',
          `job "${job.name}" has no VM and no replica on pool ${job.target}; nothing to health-check`,
        )
      context.output.emit({ kind: 'health-check-done', job: result.job, results: result.results })
      applyExitCode(context, result.results)
    })
}
