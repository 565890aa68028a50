import { resolve } from 'node:path'
import type { Command } from 'commander'
import ms from 'ms'
import { UsageError, isXenCrError } from '../errors.js'
import type { Job } from '../jobs/types.js'
import type { JobListing } from '../replication/list.js'
import type { RpoLimits } from '../replication/rpo-check.js'
import { contextOf, type CliContext } from './context.js'
import { ExitCode, exitCodeFor } from './exit-codes.js'
import type { ListedJob } from './metrics/list-metrics.js'
import type { UnreadableJob } from './output/operator-events.js'

interface ListOptions {
  check?: boolean
  includeDisabled?: boolean
  maxAge?: string
  tolerance?: string
  metricsFile?: string
}

async function listingOf(context: CliContext, job: Job, now: Date): Promise<JobListing> {
  const target = await context.connect(job.target)
  // The source only adds VMs that have no replica yet; without it the listing is still true.
  let source
  try {
    source = job.source === job.target ? target : await context.connect(job.source)
  } catch (error) {
    if (!isXenCrError(error)) throw error
    context.output.warn(
      'SOURCE_UNREACHABLE',
      `pool ${job.source} cannot be read (${error.message}); VMs of job "${job.name}" that have no replica yet are not listed`,
    )
  }
  const { listReplicas } = await import('../replication/list.js')
  return listReplicas(job, target, {
    ...(source === undefined ? {} : { source }),
    now,
    signal: context.signal,
  })
}

/** `2h`, `90m`, `0`: the `ms` package's syntax, as `--interval`. */
function durationOption(text: string | undefined, flag: string, min: number): number | undefined {
  if (text === undefined) return undefined
  const trimmed = text.trim()
  const value = trimmed === '' ? undefined : (ms(trimmed as ms.StringValue) as number | undefined)
  if (value === undefined || !Number.isFinite(value) || value < min) {
    throw new UsageError(
      'INVALID_OPTION',
      `${flag} must be a duration${min > 0 ? ' above zero' : ''} such as 90m, 2h or 1d, got "${text}"`,
    )
  }
  return value
}

function limitsOf(options: ListOptions): RpoLimits {
  const maxAgeMs = durationOption(options.maxAge, '--max-age', 1)
  const toleranceMs = durationOption(options.tolerance, '--tolerance', 0)
  return {
    ...(maxAgeMs === undefined ? {} : { maxAgeMs }),
    ...(toleranceMs === undefined ? {} : { toleranceMs }),
  }
}

/**
 * Each job's listing; a job whose pools cannot be read (an unreachable target) does not stop the
 * others: it is returned with its error, so a monitoring probe can say "cannot tell" for it alone.
 */
async function listJobs(context: CliContext, jobs: readonly Job[], now: Date): Promise<ListedJob[]> {
  const listed: ListedJob[] = []
  for (const job of jobs) {
    const identity = { id: job.id, name: job.name, enabled: job.enabled }
    try {
      listed.push({ job: identity, listing: await listingOf(context, job, now) })
    } catch (error) {
      if (!isXenCrError(error) || context.signal.aborted) throw error
      listed.push({ job: identity, error })
    }
  }
  return listed
}

function listingsOf(listed: readonly ListedJob[]): JobListing[] {
  return listed.flatMap(entry => ('listing' in entry ? [entry.listing] : []))
}

function unreadable(entry: ListedJob): UnreadableJob | undefined {
  return 'error' in entry ? { job: entry.job, code: entry.error.code, message: entry.error.message } : undefined
}

/** `list --check`: one verdict per VM of the checked jobs; exit 1 on a breach, else 4 if a job could not be read. */
async function reportCheck(
  context: CliContext,
  listed: readonly ListedJob[],
  options: ListOptions,
  limits: RpoLimits,
): Promise<void> {
  const { checkRpo } = await import('../replication/rpo-check.js')
  const checked = listed.filter(entry => entry.job.enabled || options.includeDisabled === true)
  const skipped = listed.filter(entry => !checked.includes(entry)).map(entry => ({ ...entry.job }))
  const listings = listingsOf(checked)
  if (context.options.verbose && (listings.length > 0 || checked.length === 0))
    context.output.emit({ kind: 'replica-list', listings })
  const jobs = listings.map(listing => checkRpo(listing, limits))
  const unknown = checked.flatMap(entry => unreadable(entry) ?? [])
  const breached = jobs.some(job => job.vms.some(vm => vm.status !== 'ok'))
  context.output.emit({
    kind: 'rpo-check',
    ok: !breached && unknown.length === 0,
    jobs,
    unknown,
    skipped: skipped.map(job => ({ id: job.id, name: job.name })),
  })
  const vms = jobs.reduce((sum, job) => sum + job.vms.length, 0)
  context.output.emit({
    kind: 'debug',
    message: `checked ${vms} VM${vms === 1 ? '' : 's'} of ${jobs.length} job${jobs.length === 1 ? '' : 's'}${
      skipped.length === 0 ? '' : `; ${skipped.length} disabled job${skipped.length === 1 ? '' : 's'} not checked`
    }`,
  })
  if (breached) context.setExitCode(ExitCode.failed)
  else if (unknown.length > 0) context.setExitCode(ExitCode.connection)
}

/** `xen-cr list [job] [--check …] [--metrics-file F]`: replicas per VM, age against the RPO, status. */
export function registerListCommand(program: Command): void {
  program
    .command('list')
    .description('replicas of every VM of a job (or of all jobs): datetime, age, full or delta, status against the RPO')
    .argument('[job]', 'job id or name (default: every job)')
    .option(
      '--check',
      'monitoring probe: print one line per VM out of its RPO (nothing when all is well); exit 0 ok, 1 RPO breached, 4 cannot tell',
    )
    .option('--include-disabled', 'with --check: check disabled jobs too (skipped by default)')
    .option(
      '--max-age <duration>',
      "with --check (and in the metrics): the age a replica may reach, instead of the job's RPO (e.g. 2h)",
    )
    .option(
      '--tolerance <duration>',
      'with --check (and in the metrics): grace added to the RPO or --max-age (default: a tenth of it, at most 5m)',
    )
    .option('--metrics-file <file>', "write Prometheus metrics for node_exporter's textfile collector (atomic replace)")
    .action(async (handle: string | undefined, options: ListOptions, command: Command) => {
      const context = contextOf(command)
      const limits = limitsOf(options)
      const store = await context.jobStore()
      const jobs = handle === undefined ? await store.list() : [await store.get(handle)]
      // Disabled jobs are read only when something will show them.
      const wanted =
        options.check === true && options.includeDisabled !== true && options.metricsFile === undefined
          ? jobs.filter(job => job.enabled)
          : jobs
      // one instant for every age, so that the metrics' replica timestamps are the replicas' datetimes
      const now = context.io.now?.() ?? new Date()
      const listed = await listJobs(context, wanted, now)
      if (options.check === true) {
        await reportCheck(context, listed, options, limits)
      } else {
        for (const entry of listed) {
          if (!('error' in entry)) continue
          const exitCode = exitCodeFor(entry.error)
          context.output.emit({
            kind: 'error',
            code: entry.error.code,
            message: `job "${entry.job.name}": ${entry.error.message}`,
            exitCode,
          })
          context.setExitCode(exitCode)
        }
        // every job unreadable: the errors say it all (an empty listing would read "no jobs")
        const listings = listingsOf(listed)
        if (listings.length > 0 || listed.length === 0) context.output.emit({ kind: 'replica-list', listings })
      }
      if (options.metricsFile !== undefined) {
        const file = resolve(context.io.cwd, options.metricsFile)
        // prom-client is loaded only by the runs that write metrics
        const [{ listMetricsText }, { writeMetricsFile }] = await Promise.all([
          import('./metrics/list-metrics.js'),
          import('./metrics/metrics-file.js'),
        ])
        await writeMetricsFile(file, await listMetricsText(listed, limits, now))
        context.output.emit({ kind: 'debug', message: `metrics written to ${file}` })
      }
    })
}
