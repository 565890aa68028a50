import type { Command } from 'commander'
import { UsageError, ValidationError } from '../errors.js'
import { DEFAULT_NAME_SUFFIX, parseAt } from '../recovery/failover-plan.js'
import { parseNetworkPair, type NetworkChoice } from '../recovery/network-remap.js'
import { contextOf } from './context.js'
import { ExitCode } from './exit-codes.js'
import { concurrencyOption } from './options.js'

interface FailoverCliOptions {
  vm?: string[]
  at?: string
  start: boolean
  networkMap?: string[]
  network: boolean
  nameSuffix: string
  concurrency?: string
  dryRun?: boolean
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value]
}

function networkChoice(options: FailoverCliOptions): NetworkChoice {
  if (options.networkMap !== undefined && !options.network)
    throw new UsageError('CONFLICTING_OPTIONS', '--network-map and --no-network exclude each other; choose one')
  if (!options.network) return { kind: 'none' }
  if (options.networkMap === undefined) return { kind: 'keep' }
  return { kind: 'map', pairs: options.networkMap.map(parseNetworkPair) }
}

/**
 * `xen-cr failover <job>`: only the target pool is contacted. Exit 0 when every chosen VM runs
 * (or is ready, with --no-start); 5 when every one was refused (nothing created); 1 when some
 * were failed over and others refused or failed.
 */
export function registerFailoverCommand(program: Command): void {
  program
    .command('failover')
    .description(
      "clone a job's replicas into new runnable VMs on the target pool and start them (the source pool may be down)",
    )
    .argument('<job>', 'job id or name')
    .option('--vm <uuid-or-name...>', 'only these VMs of the job (source VM uuid or name)')
    .option(
      '--at <datetime>',
      'the newest replica at or before this time (20260821T15:31:45Z or ISO 8601; UTC unless a zone is given)',
    )
    .option('--no-start', 'leave the new VMs halted')
    .option(
      '--network-map <src=dst>',
      "move VIFs from network SRC (a target network, or a source network of the job's map; uuid or name) to target network DST; repeatable",
      collect,
    )
    .option('--no-network', 'give the new VMs no VIF at all')
    .option('--name-suffix <suffix>', 'the new VM of "web" is named "web<suffix>"', DEFAULT_NAME_SUFFIX)
    .option('--concurrency <n>', "VMs set up at once within a start group (default: the job's concurrency)")
    .option('--dry-run', 'show which replica (datetime, age) each VM would come from; create nothing')
    .action(async (handle: string, options: FailoverCliOptions, command: Command) => {
      const context = contextOf(command)
      const job = await (await context.jobStore()).get(handle)
      const network = networkChoice(options)
      const concurrency = concurrencyOption(options.concurrency)
      const at = options.at === undefined ? undefined : parseAt(options.at)
      const target = await context.connect(job.target)
      const { failover } = await import('../recovery/failover.js')
      const result = await failover({
        job,
        target,
        ...(options.vm === undefined ? {} : { vms: options.vm }),
        ...(at === undefined ? {} : { at }),
        start: options.start,
        network,
        nameSuffix: options.nameSuffix,
        ...(concurrency === undefined ? {} : { concurrency }),
        dryRun: options.dryRun === true,
        signal: context.signal,
        ...(context.io.now === undefined ? {} : { now: context.io.now }),
        onEvent: event => context.output.emit(event),
      })
      if (result.plan.entries.length === 0)
        throw new ValidationError(
          'NO_REPLICA',
          `job "${job.name}" has no VM and no replica on pool ${job.target}; nothing to fail over`,
        )
      if (result.dryRun) context.output.emit({ kind: 'failover-plan', job: result.job, plan: result.plan })
      else context.output.emit({ kind: 'failover-done', job: result.job, results: result.results })
      const made = result.results.some(r => r.status !== 'refused')
      if (result.results.some(r => r.status === 'failed')) context.setExitCode(ExitCode.failed)
      else if (result.results.some(r => r.status === 'refused'))
        context.setExitCode(made ? ExitCode.failed : ExitCode.validation)
    })
}
