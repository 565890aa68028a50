import type { Command } from 'commander'
import { UsageError } from '../errors.js'
import type { LeftoverRecords } from '../replication/leftovers.js'
import type { XapiClient } from '../xapi/client.js'
import { asRef } from '../xapi/types.js'
import { connectJobPools, contextOf } from './context.js'
import { ExitCode } from './exit-codes.js'

interface CleanupOptions {
  vm?: string[]
  dryRun?: boolean
}

async function leftoverRecords(client: XapiClient, signal: AbortSignal) {
  const [vms, vdis, tasks] = await Promise.all([
    client.getAllRecords('VM', { signal }),
    client.getAllRecords('VDI', { signal }),
    client.getAllRecords('task', { signal }),
  ])
  return { vms, vdis, tasks } satisfies LeftoverRecords
}

/**
 * `xen-cr cleanup <job> [--vm …] [--dry-run]`: finds what interrupted passes of the job left on
 * both pools (by the job's keys only) and removes it, holding the job's leases so that no pass
 * on any controller is building those objects meanwhile. Exit 0 when everything found was removed
 * (or nothing was found, or --dry-run), 1 when something could not be, 3 when a pass holds a lease.
 */
export function registerCleanupCommand(program: Command): void {
  program
    .command('cleanup')
    .description(
      'remove what interrupted passes of a job left on both pools: incomplete replicas, unexported snapshots, disks attached to nothing, finished tasks',
    )
    .argument('<job>', 'job id or name')
    .option('--vm <uuid...>', 'only what was left for these source VMs')
    .option('--dry-run', 'list what would be removed; remove nothing')
    .action(async (handle: string, options: CleanupOptions, command: Command) => {
      const context = contextOf(command)
      const job = await (await context.jobStore()).get(handle)
      const { source, target } = await connectJobPools(context, job)
      const { findLeftovers, removeLeftovers } = await import('../replication/leftovers.js')
      const { selectVms } = await import('../replication/select-vms.js')
      const signal = context.signal
      const jobRef = { id: job.id, name: job.name }
      const go = async (): Promise<void> => {
        const sourceRecords = await leftoverRecords(source, signal)
        const targetRecords = source === target ? sourceRecords : await leftoverRecords(target, signal)
        const selected = selectVms(job, sourceRecords.vms)
        const jobVms = new Set(selected.map(ref => sourceRecords.vms.get(asRef<'VM'>(ref))?.uuid ?? ref))
        const only = options.vm === undefined ? undefined : new Set(options.vm)
        for (const uuid of only ?? [])
          if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(uuid))
            throw new UsageError('INVALID_OPTION', `--vm ${uuid} is not a uuid; give the source VM's uuid`)
        const search = {
          jobId: job.id,
          source: sourceRecords,
          target: targetRecords,
          jobVms,
          ...(only === undefined ? {} : { only }),
        }
        const found = findLeftovers(search)
        context.output.emit({
          kind: 'cleanup-plan',
          job: jobRef,
          dryRun: options.dryRun === true,
          remove: found.remove,
          keep: found.keep,
        })
        if (options.dryRun === true || found.remove.length === 0) return
        const outcome = await removeLeftovers(found.remove, { source, target }, search, {
          signal,
          onRemoved: item => context.output.emit({ kind: 'cleanup-removed', item }),
        })
        for (const { item, message } of outcome.failed)
          context.output.warn('CLEANUP_FAILED', `could not remove ${item.kind} ${item.name} (${item.uuid}): ${message}`)
        context.output.emit({
          kind: 'cleanup-done',
          job: jobRef,
          removed: outcome.removed.length,
          failed: outcome.failed.length,
          kept: found.keep.length,
        })
        if (outcome.failed.length > 0) context.setExitCode(ExitCode.failed)
      }
      if (options.dryRun === true) await go()
      else {
        // the lease (replication code) loads with this command only, not with the command tree (issue 11)
        const { withJobLease } = await import('./job-lease.js')
        await withJobLease(source, job, signal, 'is running elsewhere; nothing removed, run cleanup once it ends', go)
      }
    })
}
