import type { Command } from 'commander'
import { isXenCrError } from '../errors.js'
import type { Job } from '../jobs/types.js'
import { listReplicas, type JobListing } from '../replication/list.js'
import { contextOf, type CliContext } from './context.js'
import { ExitCode } from './exit-codes.js'

interface ListOptions {
  check?: boolean
}

async function listingOf(context: CliContext, job: Job): Promise<JobListing> {
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
  return listReplicas(job, target, {
    ...(source === undefined ? {} : { source }),
    now: context.io.now?.() ?? new Date(),
    signal: context.signal,
  })
}

/** `xen-cr list [job] [--check]`: replicas per VM, age against the RPO, status. */
export function registerListCommand(program: Command): void {
  program
    .command('list')
    .description('replicas of every VM of a job (or of all jobs): datetime, age, full or delta, status against the RPO')
    .argument('[job]', 'job id or name (default: every job)')
    .option('--check', 'exit 1 unless every VM has a replica within its RPO')
    .action(async (handle: string | undefined, options: ListOptions, command: Command) => {
      const context = contextOf(command)
      const store = await context.jobStore()
      const jobs = handle === undefined ? await store.list() : [await store.get(handle)]
      const listings: JobListing[] = []
      for (const job of jobs) listings.push(await listingOf(context, job))
      context.output.emit({ kind: 'replica-list', listings })
      if (options.check === true && listings.some(l => l.vms.some(vm => vm.status !== 'ok')))
        context.setExitCode(ExitCode.failed)
    })
}
