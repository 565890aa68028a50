import type { ChalkInstance } from 'chalk'
import type { Command } from 'commander'
import { isXenCrError } from '../errors.js'
import type { Job } from '../jobs/types.js'
import type { ReplicationReportEvent } from '../replication/events.js'
import { listReplicas, type JobListing, type VmStatus } from '../replication/list.js'
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

/** `45s`, `12m`, `3h05m`, `2d04h`. */
export function formatAge(ms: number | undefined): string {
  if (ms === undefined) return '-'
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m`
  const h = Math.floor(m / 60)
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`
}

function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map(row => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  '))
}

const STATUS_STYLE: Readonly<Record<VmStatus, (style: ChalkInstance, text: string) => string>> = {
  ok: (style, text) => style.green(text),
  late: (style, text) => style.red(text),
  never: (style, text) => style.yellow(text),
}

/** Lines of `list` (used by the output formatters): per job a header, per VM a status line and its replicas. */
export function formatReplicaList(
  event: Extract<ReplicationReportEvent, { kind: 'replica-list' }>,
  style: ChalkInstance,
): string[] {
  if (event.listings.length === 0) return ['no jobs; create one with: xen-cr job create --help']
  return event.listings.flatMap((listing, index) => {
    const rows: string[][] = [['VM', 'REPLICA', 'SR', 'DATETIME', 'AGE', 'CHAIN', 'STATUS']]
    for (const vm of listing.vms) {
      rows.push([
        vm.vm.name,
        `${vm.replicas.filter(r => r.complete).length} replica(s)`,
        '',
        '',
        formatAge(vm.ageMs),
        '',
        vm.status,
      ])
      for (const r of vm.replicas) {
        rows.push([
          '',
          r.name,
          r.srName,
          r.datetime ?? 'importing',
          formatAge(r.ageMs),
          r.chain,
          r.complete ? '' : 'interrupted',
        ])
      }
    }
    const lines = table(rows).map((line, i) => {
      if (i === 0) return style.bold(line)
      const vm = rows[i]![0] !== '' ? listing.vms.find(v => v.vm.name === rows[i]![0]) : undefined
      return vm === undefined
        ? line
        : line.replace(new RegExp(`${vm.status}$`), STATUS_STYLE[vm.status](style, vm.status))
    })
    return [
      ...(index === 0 ? [] : ['']),
      `job "${listing.job.name}" (${listing.job.id})${listing.job.enabled ? '' : ' [disabled]'}, RPO ${formatAge(listing.rpoMs)}`,
      ...(listing.vms.length === 0 ? ['  no VMs'] : lines),
    ]
  })
}
