import type { Command } from 'commander'
import { UsageError, ValidationError } from '../errors.js'
import { connectJobPools, contextOf } from './context.js'
import { ExitCode } from './exit-codes.js'

interface VerifyCliOptions {
  vm?: string[]
  replica?: string
  sample?: string
}

function sampleOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = /^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(n) || n < 1)
    throw new UsageError('INVALID_OPTION', `--sample ${value}: expected a number of 2 MiB blocks, at least 1`)
  return n
}

/**
 * `xen-cr verify <job>`: both pools are read, nothing is written. Exit 0 when every chosen VM's
 * replica equals its base snapshot; 1 when one differs or could not be read (or some VMs were
 * refused and others verified); 5 when every VM was refused (no replica, base snapshot gone).
 */
export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description(
      "compare each disk of a job's newest replicas (or --replica) with the source snapshot it is a copy of, per 2 MiB block",
    )
    .argument('<job>', 'job id or name')
    .option('--vm <uuid-or-name...>', 'only these VMs of the job (source VM uuid or name)')
    .option('--replica <uuid>', 'this replica instead of the newest complete one')
    .option(
      '--sample <n>',
      'compare N random 2 MiB blocks per disk, read over NBD where the hosts offer it (else streamed, with a warning)',
    )
    .action(async (handle: string, options: VerifyCliOptions, command: Command) => {
      const context = contextOf(command)
      const sample = sampleOf(options.sample)
      const job = await (await context.jobStore()).get(handle)
      const { source, target } = await connectJobPools(context, job)
      const { verifyReplicas } = await import('../recovery/verify.js')
      const result = await verifyReplicas({
        job,
        source,
        target,
        ...(options.vm === undefined ? {} : { vms: options.vm }),
        ...(options.replica === undefined ? {} : { replica: options.replica }),
        ...(sample === undefined ? {} : { sample }),
        signal: context.signal,
        ...(context.io.now === undefined ? {} : { now: context.io.now }),
        onEvent: event => context.output.emit(event),
      })
      if (result.results.length === 0)
        throw new ValidationError(
          'NO_REPLICA',
          `job "${job.name}" has no VM and no replica on pool ${job.target}; nothing to verify`,
        )
      context.output.emit({ kind: 'verify-done', job: result.job, results: result.results })
      const refused = result.results.filter(r => r.status === 'refused').length
      if (refused === result.results.length) context.setExitCode(ExitCode.validation)
      else if (refused > 0 || result.results.some(r => r.status !== 'equal')) context.setExitCode(ExitCode.failed)
    })
}
