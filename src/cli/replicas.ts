import type { Command } from 'commander'
import { UsageError, isXenCrError } from '../errors.js'
import type { Job } from '../jobs/types.js'
import type { DeletionPlan } from '../recovery/delete-replicas.js'
import type { XapiClient } from '../xapi/client.js'
import { contextOf, type CliContext } from './context.js'
import { ExitCode } from './exit-codes.js'
import { promptHidden } from './prompt.js'

interface ListOptions {
  vm?: string[]
}

interface DeleteOptions {
  vm?: string[]
  replica?: string
  all?: boolean
  yes?: boolean
}

/**
 * Asks before deleting: `--yes` answers for scripts; on a terminal the user types "yes"; without
 * either there is nobody to ask, so nothing is deleted (exit 2).
 */
async function confirmed(context: CliContext, question: string, yes: boolean): Promise<boolean> {
  if (yes) return true
  const stdin = context.io.stdin
  if (stdin?.isTTY !== true)
    throw new UsageError(
      'CONFIRMATION_REQUIRED',
      'deleting needs a confirmation and there is no terminal to ask on; add --yes; nothing deleted',
    )
  const answer = await promptHidden(`${question} Type yes to confirm: `, stdin, context.io.stderr)
  return /^y(es)?$/i.test(answer.trim())
}

/** The source pool for its snapshots, or undefined (with a warning) when it cannot be reached. */
async function reachableSource(context: CliContext, job: Job, target: XapiClient): Promise<XapiClient | undefined> {
  if (job.source === job.target) return target
  try {
    return await context.connect(job.source)
  } catch (error) {
    if (!isXenCrError(error) || context.signal.aborted) throw error
    context.output.warn(
      'SOURCE_UNREACHABLE',
      `pool ${job.source} cannot be reached (${error.message}); the job's snapshots there are not deleted`,
    )
    return undefined
  }
}

/**
 * Shows what goes, asks, deletes. Resolves to true when everything planned was deleted (also when
 * there was nothing), false when the user declined or something could not be deleted (exit 1).
 */
async function deleteWithConfirmation(
  context: CliContext,
  job: Job,
  request: { vms?: string[]; replica?: string; all: boolean; yes: boolean },
): Promise<boolean> {
  const target = await context.connect(job.target)
  const { applyDeletion, planDeletion } = await import('../recovery/delete-replicas.js')
  const opts = { signal: context.signal }
  const source = request.replica === undefined ? await reachableSource(context, job, target) : undefined
  const [targetVms, targetSrs, sourceVms] = await Promise.all([
    target.getAllRecords('VM', opts),
    target.getAllRecords('SR', opts),
    source === undefined ? undefined : source === target ? undefined : source.getAllRecords('VM', opts),
  ])
  const plan: DeletionPlan = planDeletion({
    job,
    targetVms,
    targetSrs,
    sourceVms: source === undefined ? undefined : (sourceVms ?? targetVms),
    ...(request.vms === undefined ? {} : { vms: request.vms }),
    ...(request.replica === undefined ? {} : { replica: request.replica }),
    all: request.all,
    now: context.io.now?.() ?? new Date(),
  })
  const jobId = { id: job.id, name: job.name }
  context.output.emit({ kind: 'deletion-plan', job: jobId, delete: plan.delete, keep: plan.keep })
  if (plan.delete.length === 0) return true
  if (!(await confirmed(context, `Delete these ${plan.delete.length} object(s) of job "${job.name}"?`, request.yes))) {
    context.output.emit({ kind: 'info', message: 'nothing deleted' })
    return false
  }
  const outcome = await applyDeletion(
    plan,
    { target, source },
    { signal: context.signal, onDeleted: item => context.output.emit({ kind: 'deleted', item }) },
  )
  for (const { item, message } of outcome.failed)
    context.output.warn('DELETE_FAILED', `could not delete ${item.what} ${item.name} (${item.uuid}): ${message}`)
  context.output.emit({
    kind: 'deletion-done',
    job: jobId,
    deleted: outcome.deleted.length,
    failed: outcome.failed.length,
  })
  if (outcome.failed.length > 0) context.setExitCode(ExitCode.failed)
  return outcome.failed.length === 0
}

/**
 * `job delete --purge`: every replica of the job on the target and its snapshots on the source
 * (when reachable). Resolves to true when the job definition may go: the user agreed and
 * everything planned was deleted.
 */
export function purgeJob(context: CliContext, job: Job, options: { yes: boolean }): Promise<boolean> {
  return deleteWithConfirmation(context, job, { all: true, yes: options.yes })
}

/** `xen-cr replicas <job> [--vm …]` and `xen-cr replicas delete <job> (--replica UUID | --all) [--vm …] [--yes]`. */
export function registerReplicasCommand(program: Command): void {
  const replicas = program
    .command('replicas')
    .description("a job's replicas on the target pool, per VM: uuid, datetime, age, protected, complete, chain, SR")
    .argument('<job>', 'job id or name')
    .option('--vm <uuid-or-name...>', 'only these VMs of the job (source VM uuid or name)')
    .action(async (handle: string, options: ListOptions, command: Command) => {
      const context = contextOf(command)
      const job = await (await context.jobStore()).get(handle)
      const target = await context.connect(job.target)
      const opts = { signal: context.signal }
      const [vms, srs] = await Promise.all([target.getAllRecords('VM', opts), target.getAllRecords('SR', opts)])
      const { groupJobReplicas } = await import('../recovery/job-replicas.js')
      let groups = groupJobReplicas({ job, vms, srs, now: context.io.now?.() ?? new Date() })
      if (options.vm !== undefined) {
        const wanted = options.vm
        for (const handle of wanted)
          if (!groups.some(g => g.vm.uuid === handle || g.vm.name === handle))
            throw new UsageError('VM_NOT_IN_JOB', `--vm ${handle}: no VM of job ${job.name} has this uuid or name`)
        groups = groups.filter(g => wanted.some(h => g.vm.uuid === h || g.vm.name === h))
      }
      context.output.emit({ kind: 'job-replicas', job: { id: job.id, name: job.name }, vms: groups })
    })

  replicas
    .command('delete')
    .description(
      "delete replicas of a job (VM and disks) on the target pool; with --all also the job's snapshots on the source pool",
    )
    .argument('<job>', 'job id or name')
    .option('--vm <uuid-or-name...>', 'only these VMs of the job')
    .option('--replica <uuid>', 'exactly this replica')
    .option('--all', 'every replica of the (chosen) VMs, and their snapshots on the source pool when it is reachable')
    .option('--yes', 'do not ask (needed without a terminal)')
    .action(async (handle: string, options: DeleteOptions, command: Command) => {
      const context = contextOf(command)
      if (options.replica !== undefined && options.all === true)
        throw new UsageError('CONFLICTING_OPTIONS', '--replica and --all exclude each other; choose one')
      // commander gives an option the parent also defines (--vm) to the parent
      const vms = options.vm ?? command.parent?.opts<ListOptions>().vm
      const job = await (await context.jobStore()).get(handle)
      await deleteWithConfirmation(context, job, {
        ...(vms === undefined ? {} : { vms }),
        ...(options.replica === undefined ? {} : { replica: options.replica }),
        all: options.all === true,
        yes: options.yes === true,
      })
    })
}
