import type { Command } from 'commander'
import { ValidationError } from '../errors.js'
import type { JobStore } from '../jobs/job-store.js'
import type { Job } from '../jobs/types.js'
import type { FailbackVmResult } from '../recovery/failback-events.js'
import type { FailbackResult } from '../recovery/failback.js'
import { connectJobPools, contextOf, type CliContext } from './context.js'
import { ExitCode } from './exit-codes.js'
import { concurrencyOption } from './options.js'

interface FailbackCliOptions {
  vm?: string[]
  inPlace?: boolean
  start: boolean
  nameSuffix: string
  concurrency?: string
  dryRun?: boolean
}

/**
 * A job that names its VMs by uuid must replicate the new VM from now on, not the original: the
 * new VM is where production runs, and its snapshot is the base the failback left.
 */
async function pointJobAtNewVms(
  context: CliContext,
  store: JobStore,
  job: Job,
  results: readonly FailbackVmResult[],
): Promise<{ from: string; to: string }[]> {
  const changes: { from: string; to: string }[] = []
  for (const r of results) {
    if (r.status !== 'success' || r.mode !== 'new') continue
    const from = r.original?.uuid
    if (from !== undefined && job.vms.uuids.includes(from)) changes.push({ from, to: r.vm.uuid })
    else if (job.vms.all || job.vms.tags.length > 0)
      context.output.warn(
        'JOB_SELECTS_ORIGINAL',
        `job "${job.name}" selects VMs by ${job.vms.all ? 'all' : 'tag'}: it replicates ${r.vm.name} (${r.vm.uuid})${from === undefined ? '' : `, and the original ${from} as long as it is on the source pool with that selection; remove it once you no longer need it`}`,
      )
  }
  if (changes.length > 0)
    await store.update(job.id, current => ({
      ...current,
      vms: {
        ...current.vms,
        uuids: current.vms.uuids.map(uuid => changes.find(c => c.from === uuid)?.to ?? uuid),
      },
    }))
  return changes
}

/**
 * `xen-cr failback <job>`: both pools are contacted. Exit 0 when every chosen VM went back; 5
 * when every one was refused (nothing created or written); 1 when some went back and others
 * were refused or failed.
 */
export function registerFailbackCommand(program: Command): void {
  program
    .command('failback')
    .description(
      "send a job's failed-over VMs back to the source pool as deltas (reverse replication); the job then resumes with a delta",
    )
    .argument('<job>', 'job id or name')
    .option(
      '--vm <uuid-or-name...>',
      'only these failed-over VMs (their uuid or name on the target pool, or the uuid of the VM they stand in for)',
    )
    .option(
      '--in-place',
      'update the original VM instead of creating a new one: only when it is halted and its disks are unchanged since the base',
    )
    .option('--no-start', 'leave the failed-back VMs halted (they are never started while their failed-over VM runs)')
    .option('--name-suffix <suffix>', 'the new VM of "web" is named "web<suffix>" (default: the same name)', '')
    .option('--concurrency <n>', "VMs sent back at once (default: the job's concurrency)")
    .option('--dry-run', 'show what each VM would be sent back from and onto; create and write nothing')
    .action(async (handle: string, options: FailbackCliOptions, command: Command) => {
      const context = contextOf(command)
      const store = await context.jobStore()
      const job = await store.get(handle)
      const concurrency = concurrencyOption(options.concurrency)
      const { source, target } = await connectJobPools(context, job)
      const { failback } = await import('../recovery/failback.js')
      const go = (): Promise<FailbackResult> =>
        failback({
          job,
          source,
          target,
          ...(options.vm === undefined ? {} : { vms: options.vm }),
          inPlace: options.inPlace === true,
          start: options.start,
          nameSuffix: options.nameSuffix,
          ...(concurrency === undefined ? {} : { concurrency }),
          dryRun: options.dryRun === true,
          signal: context.signal,
          ...(context.io.now === undefined ? {} : { now: context.io.now }),
          onEvent: event => context.output.emit(event),
        })
      // the lease (replication code) loads with this command only, not with the command tree (issue 11)
      const { withJobLease } = await import('./job-lease.js')
      const result =
        options.dryRun === true
          ? await go()
          : await withJobLease(
              source,
              job,
              context.signal,
              'is running elsewhere; nothing done, fail back once it ends',
              go,
            )
      if (result.plan.entries.length === 0)
        throw new ValidationError(
          'NOT_FAILED_OVER',
          `job "${job.name}" has no VM made by xen-cr failover on pool ${job.target}; nothing to fail back`,
        )
      if (result.dryRun) {
        context.output.emit({ kind: 'failback-plan', job: result.job, plan: result.plan })
      } else {
        const jobVms = await pointJobAtNewVms(context, store, job, result.results)
        context.output.emit({ kind: 'failback-done', job: result.job, results: result.results, jobVms })
      }
      const made = result.results.some(r => r.status !== 'refused')
      if (result.results.some(r => r.status === 'failed')) context.setExitCode(ExitCode.failed)
      else if (result.results.some(r => r.status === 'refused'))
        context.setExitCode(made ? ExitCode.failed : ExitCode.validation)
    })
}
