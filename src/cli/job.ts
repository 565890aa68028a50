import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import type { NewJobInput } from '../jobs/build-job.js'
import { crontabLine } from '../jobs/crontab.js'
import type { JobStore } from '../jobs/job-store.js'
import type { Job } from '../jobs/types.js'
import { ValidationError } from '../errors.js'
import { contextOf, type CliContext } from './context.js'
import { addHealthCheckFlags, healthCheckInput, type HealthCheckFlags } from './health-check.js'
import { purgeJob } from './replicas.js'

/** bin/xen-cr.js, absolute: src/cli/ and dist/cli/ both sit two levels below the package root. */
const BIN_SCRIPT = fileURLToPath(new URL('../../bin/xen-cr.js', import.meta.url))

interface CreateOptions extends HealthCheckFlags {
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
  id?: string
  scheduleId?: string
  concurrency?: string
  fullInterval?: string
  networkMap?: string[]
  maxRate?: string
  disabled?: boolean
}

/** The crontab line of `job`, with the absolute paths cron needs (also used by `job edit`). */
export async function crontabFor(context: CliContext, store: JobStore, job: Job): Promise<string> {
  const config = await context.loadConfig()
  return crontabLine(job, {
    node: process.execPath,
    script: BIN_SCRIPT,
    ...(config.file === undefined ? {} : { configFile: config.file }),
    jobsFile: store.file,
  })
}

async function createJob(context: CliContext, options: CreateOptions): Promise<void> {
  // imported here, not at the top: `job list` and `--help` need none of it (issue 11)
  const [{ buildJob }, { getPool }, { checkJob, readInventory }] = await Promise.all([
    import('../jobs/build-job.js'),
    import('../config/connect-pool.js'),
    import('../jobs/check-job.js'),
  ])
  const config = await context.loadConfig()
  const store = await context.jobStore()
  const input: NewJobInput = {
    name: options.name,
    source: options.source,
    target: options.target,
    interval: options.interval,
    cron: options.cron,
    retention: options.retention,
    id: options.id,
    scheduleId: options.scheduleId,
    concurrency: options.concurrency,
    fullInterval: options.fullInterval,
    maxRate: options.maxRate,
    srs: options.sr,
    vms: options.vm,
    tags: options.tag,
    allVms: options.allVms,
    networkMap: options.networkMap,
    disabled: options.disabled,
    healthCheck: healthCheckInput(options),
  }
  const draft = buildJob(input, config.defaults, context.io.now?.() ?? new Date())
  // cheap refusals first: a clash or an unknown pool needs no login
  const clash = (await store.list()).find(job =>
    [job.id, job.name].some(handle => handle === draft.id || handle === draft.name),
  )
  if (clash !== undefined) {
    throw new ValidationError(
      'JOB_EXISTS',
      `job ${clash.id} ("${clash.name}") already uses this ${clash.id === draft.id ? 'id' : 'name'}; choose another --name or --id`,
    )
  }
  getPool(config, draft.source, context.io.env)
  getPool(config, draft.target, context.io.env)

  context.output.emit({ kind: 'debug', message: `checking pools "${draft.source}" and "${draft.target}"` })
  const sourceClient = await context.connect(draft.source)
  const targetClient = draft.target === draft.source ? sourceClient : await context.connect(draft.target)
  const signal = { signal: context.signal }
  const sourceInventory = await readInventory(sourceClient, signal)
  const targetInventory = targetClient === sourceClient ? sourceInventory : await readInventory(targetClient, signal)
  const job = checkJob(draft, sourceInventory, targetInventory, (code, message) => context.output.warn(code, message))

  await store.add(job)
  context.output.emit({ kind: 'job-created', job, crontab: await crontabFor(context, store, job) })
  if (!job.enabled) {
    context.output.emit({
      kind: 'info',
      message: `job "${job.name}" is disabled: run --due skips it until xen-cr job enable ${job.id}`,
    })
  }
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value]
}

/** `xen-cr job create | list | show | delete | enable | disable`. */
export function registerJobCommand(program: Command): void {
  const job = program.command('job').description('define replication jobs (kept in the job store)')

  const create = job
    .command('create')
    .description('define a job; pools, VMs, SRs and networks are checked against XAPI before it is saved')
    .option('--name <name>', 'job name (unique)')
    .option('--source <pool>', 'source pool (name in the config)')
    .option('--target <pool>', 'target pool (name in the config)')
    .option('--sr <uuid...>', "target SR; repeat for one replica per SR (default: the target pool's default SR)")
    .option('--vm <uuid...>', 'VM to replicate; repeatable')
    .option('--tag <tag...>', 'replicate the VMs with this tag; repeatable')
    .option('--all-vms', 'replicate every VM of the source pool')
    .option('--interval <duration>', 'schedule: every 15m, 1h, 24h, 7d …')
    .option('--cron <expression>', 'schedule: a 5-field crontab expression, e.g. "0 */6 * * *"')
    .option('--retention <n>', 'replicas kept per VM and SR (default: defaults.retention, else 1)')
    .option('--id <uuid>', 'adopt this job id (e.g. from Xen Orchestra or a seed)')
    .option('--schedule-id <uuid>', 'adopt this schedule id')
    .option('--concurrency <n>', 'VMs replicated in parallel (default: defaults.concurrency, else 2)')
    .option('--full-interval <n>', 'force a full every N passes; 0 = never (default: defaults.fullInterval, else 0)')
    .option('--network-map <src=dst>', 'source network uuid = target network uuid; repeatable', collect)
    .option('--max-rate <rate>', 'bytes per second for the whole job, binary units: 50M = 50 MiB/s')
    .option('--disabled', 'create it disabled (run --due skips it; run <job> still works)')
  addHealthCheckFlags(create).action(async (options: CreateOptions, command: Command) =>
    createJob(contextOf(command), options),
  )

  job
    .command('list')
    .alias('ls')
    .description('list the jobs')
    .action(async (_options: unknown, command: Command) => {
      const context = contextOf(command)
      const store = await context.jobStore()
      context.output.emit({ kind: 'job-list', jobs: await store.list() })
    })

  job
    .command('show')
    .argument('<job>', 'job id or name')
    .description('show a job, its ids and its crontab line')
    .action(async (handle: string, _options: unknown, command: Command) => {
      const context = contextOf(command)
      const store = await context.jobStore()
      const found = await store.get(handle)
      context.output.emit({ kind: 'job-show', job: found, crontab: await crontabFor(context, store, found) })
    })

  job
    .command('delete')
    .alias('rm')
    .argument('<job>', 'job id or name')
    .description('delete a job definition (its replicas and snapshots stay in the pools unless --purge)')
    .option('--purge', "first delete the job's replicas on the target pool and its snapshots on the source pool")
    .option('--yes', 'do not ask before purging (needed without a terminal)')
    .action(async (handle: string, options: { purge?: boolean; yes?: boolean }, command: Command) => {
      const context = contextOf(command)
      const store = await context.jobStore()
      // The definition goes only once its objects are gone, so a purge can be run again.
      if (options.purge === true && !(await purgeJob(context, await store.get(handle), { yes: options.yes === true })))
        return
      const removed = await store.remove(handle)
      context.output.emit({ kind: 'job-deleted', id: removed.id, name: removed.name })
    })

  for (const enabled of [true, false]) {
    job
      .command(enabled ? 'enable' : 'disable')
      .argument('<job>', 'job id or name')
      .description(enabled ? 'let run --due run the job' : 'make run --due skip the job (run <job> still runs it)')
      .action(async (handle: string, _options: unknown, command: Command) => {
        const context = contextOf(command)
        const updated = await (await context.jobStore()).update(handle, current => ({ ...current, enabled }))
        context.output.emit({ kind: 'job-state', id: updated.id, name: updated.name, enabled })
      })
  }
}
