import type { Command } from 'commander'
import { UsageError } from '../errors.js'
import type { JobEditInput } from '../jobs/edit-job.js'
import { connectJobPools, contextOf, type CliContext } from './context.js'
import { addHealthCheckFlags, healthCheckEditInput, type HealthCheckFlags } from './health-check.js'
import { crontabFor } from './job.js'

interface EditOptions extends HealthCheckFlags {
  name?: string
  source?: string
  target?: string
  sr?: string[]
  vm?: string[]
  tag?: string[]
  allVms?: boolean
  interval?: string
  cron?: string
  retention?: string
  concurrency?: string
  fullInterval?: string
  networkMap?: string[]
  maxRate?: string
  enabled?: boolean
  disabled?: boolean
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value]
}

function editInputOf(options: EditOptions): JobEditInput {
  if (options.enabled === true && options.disabled === true)
    throw new UsageError('CONFLICTING_OPTIONS', 'give either --enabled or --disabled, not both')
  return {
    name: options.name,
    source: options.source,
    target: options.target,
    srs: options.sr,
    vms: options.vm,
    tags: options.tag,
    allVms: options.allVms,
    interval: options.interval,
    cron: options.cron,
    retention: options.retention,
    concurrency: options.concurrency,
    fullInterval: options.fullInterval,
    networkMap: options.networkMap,
    maxRate: options.maxRate,
    enabled: options.enabled === true ? true : options.disabled === true ? false : undefined,
    healthCheck: healthCheckEditInput(options),
  }
}

/**
 * `job edit`: the edited job goes through `buildJob` and `checkJob` exactly as a new one does
 * (exit 2 for a malformed flag, 5 for what the pools refuse), and is saved only if the job
 * store still holds the job as it was read; on any refusal nothing is written.
 */
async function editJob(context: CliContext, handle: string, options: EditOptions): Promise<void> {
  // imported here, not at the top: `--help` needs none of it (issue 11)
  const [{ applyJobEdit, isEmptyEdit, jobChanges }, { getPool }, { checkJob, readInventory }] = await Promise.all([
    import('../jobs/edit-job.js'),
    import('../config/connect-pool.js'),
    import('../jobs/check-job.js'),
  ])
  const edit = editInputOf(options)
  if (isEmptyEdit(edit))
    throw new UsageError(
      'MISSING_OPTION',
      'give at least one setting to change, e.g. --retention 3 (see job edit --help)',
    )
  const config = await context.loadConfig()
  const store = await context.jobStore()
  const before = await store.get(handle)
  const draft = applyJobEdit(before, edit, config.defaults, context.io.now?.() ?? new Date())
  getPool(config, draft.source, context.io.env)
  getPool(config, draft.target, context.io.env)

  context.output.emit({ kind: 'debug', message: `checking pools "${draft.source}" and "${draft.target}"` })
  const pools = await connectJobPools(context, draft)
  const signal = { signal: context.signal }
  const sourceInventory = await readInventory(pools.source, signal)
  const targetInventory = pools.target === pools.source ? sourceInventory : await readInventory(pools.target, signal)
  const after = checkJob(draft, sourceInventory, targetInventory, (code, message) => context.output.warn(code, message))

  const changes = jobChanges(before, after)
  if (changes.length > 0) await store.replace(before, after)
  context.output.emit({ kind: 'job-edited', job: after, changes, crontab: await crontabFor(context, store, after) })
}

/** `xen-cr job edit <job> [the flags of job create, but the ids]`. */
export function registerJobEditCommand(program: Command): void {
  const job = program.commands.find(command => command.name() === 'job')
  if (job === undefined) throw new Error('registerJobEditCommand: register the job command first')
  const edit = job
    .command('edit')
    .argument('<job>', 'job id or name')
    .description(
      'change settings of a job; checked against XAPI as by job create, saved atomically (nothing saved on refusal)',
    )
    .option('--name <name>', 'rename the job (replicas are keyed by its id, which stays)')
    .option('--source <pool>', 'source pool (name in the config)')
    .option('--target <pool>', "target pool (without --sr: the new target's default SR)")
    .option('--sr <uuid...>', 'target SRs, replacing the current ones')
    .option('--vm <uuid...>', 'VMs to replicate; --vm, --tag and --all-vms replace the whole selection')
    .option('--tag <tag...>', 'replicate the VMs with this tag; repeatable')
    .option('--all-vms', 'replicate every VM of the source pool')
    .option('--interval <duration>', 'schedule: every 15m, 1h, 24h, 7d …')
    .option('--cron <expression>', 'schedule: a 5-field crontab expression, e.g. "0 */6 * * *"')
    .option('--retention <n>', 'replicas kept per VM and SR')
    .option('--concurrency <n>', 'VMs replicated in parallel')
    .option('--full-interval <n>', 'force a full every N passes; 0 = never')
    .option(
      '--network-map <src=dst>',
      'source network uuid = target network uuid; repeatable, replaces the map; "none" empties it',
      collect,
    )
    .option('--max-rate <rate>', 'bytes per second for the whole job, binary units: 50M = 50 MiB/s; "none" lifts it')
    .option('--enabled', 'enable the job (as job enable)')
    .option('--disabled', 'disable the job (as job disable)')
  addHealthCheckFlags(edit)
    .option('--no-health-check', 'stop boot-testing the replicas after each pass')
    .action(async (handle: string, options: EditOptions, command: Command) =>
      editJob(contextOf(command), handle, options),
    )
}
