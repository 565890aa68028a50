/**
 * Failback, or reverse replication: each failed-over VM of a job goes back to the source pool as
 * a delta. Its disks still share their content with the replica they were cloned from, and that
 * replica's content equals its base snapshot on the source pool; so a snapshot of the failed-over
 * VM is exported with the replica's disks as `base` (only the blocks written since failover
 * travel) and imported onto `VDI.clone`s of the base snapshot's disks — or, in place, onto the
 * original VM's own disks when they are provably unchanged since that snapshot (XO 6.5's rule).
 * Then the job is left a base for its next delta (`failback-resume.ts`).
 *
 * The failed-over VM and the replicas are never modified: the one object made on the target
 * besides the job's new replica is the failback snapshot, always removed. A VM that fails
 * leaves nothing behind on either pool (an in-place write that was cut leaves the original VM
 * blocked from starting, with a reason saying how to finish).
 */
import { setMaxListeners } from 'node:events'
import { AbortedError, isXenCrError } from '../errors.js'
import { CleanupStack } from '../delta/cleanup.js'
import { createReplicaVm } from '../delta/import-vm.js'
import { RateLimiter } from '../delta/rate-limit.js'
import { transferDisk } from '../delta/transfer-disk.js'
import { readDeltaMetadata, type DeltaDisk, type DeltaVmMetadata } from '../delta/vm-metadata.js'
import type { Job } from '../jobs/types.js'
import { destroyVmAndDisks } from '../replication/destroy.js'
import { mapLimit } from '../replication/map-limit.js'
import { BLOCKED_START_OPERATIONS, RECOVERY_KEYS } from '../replication/metadata.js'
import { throttleProgress } from '../replication/progress-throttle.js'
import { fetchPoolRecords } from '../replication/records.js'
import type { XapiClient } from '../xapi/client.js'
import { asRef, type Ref } from '../xapi/types.js'
import { setVdiOtherConfig } from '../xapi/vdi.js'
import { blockOperation, setVmNameLabel, setVmOtherConfig, snapshotVm, startVm, unblockOperation } from '../xapi/vm.js'
import { countChangedBlocks } from './changed-blocks.js'
import type {
  FailbackDiskResult,
  FailbackEventSink,
  FailbackVmResult,
  FailedOverVm,
  NamedObject,
} from './failback-events.js'
import { planFailback, type FailbackEntry, type FailbackPlan, type ReadyFailback } from './failback-plan.js'
import {
  FAILBACK_IMPORTING_REASON,
  FAILBACK_INTERRUPTED_REASON,
  FAILBACK_POLICY,
  droppedKeyRemovals,
  reverseNetworkMap,
} from './failback-policy.js'
import { resumeJob } from './failback-resume.js'

export interface FailbackOptions {
  readonly job: Job
  readonly source: XapiClient
  readonly target: XapiClient
  /** failed-over VM uuids or names (or the uuids of the VMs they stand in for); default all */
  readonly vms?: readonly string[]
  /** update the original VMs instead of creating new ones */
  readonly inPlace?: boolean
  /** start each failed-back VM (default true; never while its failed-over VM runs) */
  readonly start?: boolean
  /** appended to the original name for a new VM; default none */
  readonly nameSuffix?: string
  /** VMs sent back at once; default the job's concurrency */
  readonly concurrency?: number
  /** plan (and, in place, check the originals' disks) only: nothing is created or written */
  readonly dryRun?: boolean
  readonly signal?: AbortSignal
  readonly onEvent?: FailbackEventSink
  readonly now?: () => Date
}

export interface FailbackResult {
  readonly job: { readonly id: string; readonly name: string }
  readonly dryRun: boolean
  readonly plan: FailbackPlan
  /** refusals first, then one per VM sent back (none on a dry run) */
  readonly results: readonly FailbackVmResult[]
}

function errorInfo(error: unknown): { code: string; message: string } {
  if (isXenCrError(error)) return { code: error.code, message: error.message }
  return { code: 'UNEXPECTED', message: error instanceof Error ? error.message : String(error) }
}

interface VmContext {
  readonly job: Job
  readonly source: XapiClient
  readonly target: XapiClient
  readonly sourceSrUuids: ReadonlyMap<string, string>
  readonly start: boolean
  readonly limiter: RateLimiter | undefined
  readonly signal: AbortSignal | undefined
  readonly emit: FailbackEventSink
  readonly now: () => Date
}

/** Plans, then (unless `dryRun`) sends back every ready VM. Never throws for one VM's failure. */
export async function failback(o: FailbackOptions): Promise<FailbackResult> {
  const { job, source, target } = o
  const emit: FailbackEventSink = o.onEvent ?? (() => undefined)
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  const [sourceRecords, targetRecords] = await Promise.all([
    fetchPoolRecords(source, opts),
    target === source ? undefined : fetchPoolRecords(target, opts),
  ])
  const planned = planFailback({
    job,
    source: sourceRecords,
    target: targetRecords ?? sourceRecords,
    ...(o.vms === undefined ? {} : { vms: o.vms }),
    mode: o.inPlace === true ? 'in-place' : 'new',
    nameSuffix: o.nameSuffix ?? '',
  })
  // In place is refused unless the host says the original's disks hold what the base holds.
  const entries: FailbackEntry[] = []
  for (const entry of planned.entries)
    entries.push(
      entry.status === 'ready' && entry.mode === 'in-place'
        ? await checkUnchanged(source, entry, emit, o.signal)
        : entry,
    )
  const plan: FailbackPlan = { ...planned, entries }
  const jobId = { id: job.id, name: job.name }
  const results: FailbackVmResult[] = []
  for (const entry of entries)
    if (entry.status === 'refused')
      results.push({
        status: 'refused',
        failedOver: entry.failedOver,
        error: { code: entry.code, message: entry.message },
      })
  if (o.dryRun === true) return { job: jobId, dryRun: true, plan, results }

  const ready = entries.filter((e): e is ReadyFailback => e.status === 'ready')
  emit({ kind: 'failback-start', job: { ...jobId }, vms: ready.length })
  for (const result of results) emit({ kind: 'failback-vm-done', result })
  const ctx: VmContext = {
    job,
    source,
    target,
    sourceSrUuids: new Map([...sourceRecords.srs].map(([ref, sr]) => [ref, sr.uuid])),
    start: o.start !== false,
    limiter: job.maxRate === undefined || job.maxRate <= 0 ? undefined : new RateLimiter(job.maxRate),
    signal: o.signal,
    emit,
    now: o.now ?? (() => new Date()),
  }
  const done = await mapLimit(ready, o.concurrency ?? job.concurrency, async entry => {
    const result = await failbackVm(ctx, entry)
    emit({ kind: 'failback-vm-done', result })
    return result
  })
  return { job: jobId, dryRun: false, plan, results: [...results, ...done] }
}

/**
 * The original VM's disks against the base snapshot's, block by block as the host's storage
 * sees them: one block written since the base (by anyone) refuses the in-place update. An
 * original left mid-write by an interrupted in-place failback from the same replica may resume:
 * the new delta covers every block the cut one wrote.
 */
async function checkUnchanged(
  source: XapiClient,
  entry: ReadyFailback,
  emit: FailbackEventSink,
  signal: AbortSignal | undefined,
): Promise<FailbackEntry> {
  const original = entry.original!
  const refuse = (message: string): FailbackEntry => ({
    status: 'refused',
    failedOver: entry.failedOver,
    code: 'IN_PLACE_REFUSED',
    message: `the original VM ${original.name} (${original.uuid}) ${message}; nothing written: fail back to a new VM instead`,
  })
  const record = await source.getRecord('VM', asRef<'VM'>(original.ref), signal === undefined ? {} : { signal })
  const interrupted = record.other_config[RECOVERY_KEYS.failbackInPlace]
  if (interrupted !== undefined) {
    if (interrupted !== entry.replica.uuid)
      return refuse(`holds an interrupted in-place failback from another replica (${interrupted})`)
    emit({
      kind: 'warning',
      vm: { uuid: entry.failedOver.uuid, name: entry.failedOver.name },
      code: 'FAILBACK_RESUMED',
      message: `the original VM ${original.name} holds an interrupted in-place failback from the same replica; writing it again`,
    })
    return entry
  }
  for (const disk of entry.disks) {
    const delta = disk.delta!
    const changed = await countChangedBlocks(
      source,
      asRef<'VDI'>(delta.original!.ref),
      asRef<'VDI'>(delta.base.ref),
      signal,
    )
    if (changed > 0)
      return refuse(
        `changed since the base snapshot of ${entry.base.datetime}: disk ${disk.userdevice} (${delta.original!.name}) has ${changed} block${changed === 1 ? '' : 's'} written since`,
      )
  }
  return entry
}

/** Where a failed-back disk lands on the source pool, and what travels into it. */
interface Landing {
  readonly snapshotDisk: DeltaDisk
  /** the replica disk: the export's base; absent for a disk that travels in full */
  readonly base?: Ref<'VDI'>
  readonly into: Ref<'VDI'>
}

async function failbackVm(ctx: VmContext, entry: ReadyFailback): Promise<FailbackVmResult> {
  const { source, target } = ctx
  const started = Date.now()
  const failedOver: FailedOverVm = {
    uuid: entry.failedOver.uuid,
    name: entry.failedOver.name,
    powerState: entry.failedOver.powerState,
  }
  const base = { uuid: entry.base.uuid, name: entry.base.name, datetime: entry.base.datetime }
  ctx.emit({ kind: 'failback-vm-start', failedOver, mode: entry.mode, base })
  const warnVm = { uuid: failedOver.uuid, name: failedOver.name }
  const warn = (code: string, message: string): void => ctx.emit({ kind: 'warning', vm: warnVm, code, message })
  const cleanup = new CleanupStack()
  const local = new AbortController()
  setMaxListeners(0, local.signal)
  const onAbort = (): void => local.abort(ctx.signal?.reason)
  ctx.signal?.addEventListener('abort', onAbort, { once: true })
  const signal = local.signal
  const opts = { signal }
  const original = { cut: false }
  let snapshot: Ref<'VM'> | undefined
  try {
    const failedOverRef = asRef<'VM'>(entry.failedOver.ref)
    // a VM still running when it is snapshotted keeps writing after it
    const runningAtSnapshot = (await target.getRecord('VM', failedOverRef, opts)).power_state !== 'Halted'
    snapshot = await snapshotVm(target, failedOverRef, `[xen-cr failback] ${entry.failedOver.name}`, opts)
    const metadata = await readDeltaMetadata(target, snapshot, opts)
    const made =
      entry.mode === 'new'
        ? await assembleNew(ctx, entry, metadata, cleanup, warn, signal)
        : await prepareInPlace(ctx, entry, metadata, cleanup, original, signal)
    const disks: FailbackDiskResult[] = []
    for (const landing of made.landings) disks.push(await sendDisk(ctx, entry, landing, signal))
    await made.finish()
    const vmRecord = await source.getRecord('VM', made.vm, opts)
    const vm: NamedObject = { uuid: vmRecord.uuid, name: vmRecord.name_label }
    const resume = await resumeJob({
      source,
      target,
      job: ctx.job,
      scheduleId: entry.base.scheduleId,
      vm: { ref: made.vm, ...vm },
      failbackSnapshot: metadata,
      replicaSr: { ref: entry.replica.srRef, uuid: entry.replica.srUuid },
      deltaChainLength: entry.base.deltaChainLength + 1,
      at: ctx.now(),
      cleanup,
      signal,
      warn,
    })
    let startedVm = false
    if (ctx.start && runningAtSnapshot) {
      warn(
        'FAILED_OVER_VM_RUNNING',
        `${failedOver.name} was still running when it was snapshotted: what it wrote since is not in ${vm.name}, which is left halted so that the two never run at once; shut ${failedOver.name} down and fail back again for the last blocks, or start ${vm.name} yourself`,
      )
    } else if (ctx.start) {
      await startVm(source, made.vm, opts)
      startedVm = true
    }
    cleanup.commit()
    return {
      status: 'success',
      failedOver,
      mode: entry.mode,
      vm,
      original: entry.original === undefined ? undefined : { uuid: entry.original.uuid, name: entry.original.name },
      replica: { uuid: entry.replica.uuid, name: entry.replica.name, datetime: entry.replica.datetime },
      base,
      bytes: disks.reduce((n, d) => n + d.bytes, 0),
      disks,
      started: startedVm,
      resume,
      durationMs: Date.now() - started,
    }
  } catch (error) {
    local.abort(error)
    const made = cleanup.size > 0
    const failures = await cleanup.unwind()
    for (const failure of failures)
      warn(
        'CLEANUP_FAILED',
        `could not undo ${failure.label} after the failed failback: ${errorInfo(failure.error).message}; remove it by hand`,
      )
    const info = ctx.signal?.aborted === true && !isXenCrError(error) ? errorInfo(new AbortedError()) : errorInfo(error)
    const outcome = original.cut
      ? `; the original VM's disks are partly written: its start stays blocked until a failback --in-place of ${failedOver.name} completes`
      : made && failures.length === 0
        ? '; what it had made was removed'
        : ''
    return {
      status: 'failed',
      failedOver,
      mode: entry.mode,
      error: { code: info.code, message: `${info.message}${outcome}` },
      durationMs: Date.now() - started,
    }
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort)
    if (snapshot !== undefined) {
      const ref = snapshot
      await destroyVmAndDisks(target, ref).catch((error: unknown) =>
        warn(
          'CLEANUP_FAILED',
          `could not remove the failback snapshot ${ref} of ${failedOver.name} on the target pool: ${errorInfo(error).message}; remove it by hand`,
        ),
      )
    }
  }
}

/** What a mode prepared: the VM the disks land in, each disk's landing, and how to finish it. */
interface Prepared {
  readonly vm: Ref<'VM'>
  readonly landings: readonly Landing[]
  /** after every disk arrived: the VM's final name and an unblocked start */
  finish(): Promise<void>
}

/** A failed-over disk's plan, by the userdevice the snapshot kept. */
const plannedDisk = (entry: ReadyFailback, disk: DeltaDisk) =>
  entry.disks.find(d => d.userdevice === disk.vbd.userdevice)

/**
 * A new VM on the source pool from the failback snapshot's records: disks cloned from the base
 * snapshot's (or new, for a disk added after failover), VIFs mapped back, start blocked until
 * the disks are written.
 */
async function assembleNew(
  ctx: VmContext,
  entry: ReadyFailback,
  metadata: DeltaVmMetadata,
  cleanup: CleanupStack,
  warn: (code: string, message: string) => void,
  signal: AbortSignal,
): Promise<Prepared> {
  const { source } = ctx
  const opts = { signal }
  const specs = metadata.disks.map(disk => {
    const delta = plannedDisk(entry, disk)?.delta
    return { disk, ...(delta === undefined ? {} : { cloneOf: asRef<'VDI'>(delta.base.ref) }), otherConfig: {} }
  })
  const sr = entry.disks.find(d => d.delta !== undefined)!.delta!.base.srRef
  const created = await createReplicaVm({
    target: source,
    metadata,
    sr: asRef<'SR'>(sr),
    name: entry.name,
    otherConfig: {},
    disks: specs,
    policy: FAILBACK_POLICY,
    networkMap: reverseNetworkMap(ctx.job.networkMap),
    cleanup,
    signal,
    warn,
  })
  // The clones carry the base snapshot's job keys: on a live VM they would pass for a snapshot's.
  for (const vdi of created.vdis) {
    const record = await source.getRecord('VDI', vdi, opts)
    await setVdiOtherConfig(source, vdi, droppedKeyRemovals(record.other_config), opts)
  }
  const vm = created.vm
  return {
    vm,
    landings: metadata.disks.map((disk, i) => {
      const delta = plannedDisk(entry, disk)?.delta
      return {
        snapshotDisk: disk,
        ...(delta === undefined ? {} : { base: asRef<'VDI'>(delta.replica.ref) }),
        into: created.vdis[i]!,
      }
    }),
    async finish() {
      await setVmNameLabel(source, vm, entry.name, opts)
      for (const op of BLOCKED_START_OPERATIONS) await unblockOperation(source, vm, op, opts)
      const priority = metadata.vm.ha_restart_priority
      // HA as the failed-over VM had it (assembling turned it off, as for a replica)
      if (priority !== '') await source.call('VM.set_ha_restart_priority', [vm, priority], opts)
    },
  }
}

/**
 * The original VM, its start blocked while its own disks are written. A write cut halfway
 * cannot be undone: the block then stays, with a reason that says how to finish, and a key
 * that lets the next in-place failback from the same replica resume.
 */
async function prepareInPlace(
  ctx: VmContext,
  entry: ReadyFailback,
  metadata: DeltaVmMetadata,
  cleanup: CleanupStack,
  original: { cut: boolean },
  signal: AbortSignal,
): Promise<Prepared> {
  const { source } = ctx
  const opts = { signal }
  const vm = asRef<'VM'>(entry.original!.ref)
  const before = await source.getRecord('VM', vm, opts)
  const restore = async (): Promise<void> => {
    for (const op of BLOCKED_START_OPERATIONS) {
      const reason = before.blocked_operations[op]
      // a block left by an interrupted failback is ours to lift, not the VM's own
      if (reason === undefined || reason === FAILBACK_INTERRUPTED_REASON) await unblockOperation(source, vm, op)
      else await blockOperation(source, vm, op, reason)
    }
    await setVmOtherConfig(source, vm, { [RECOVERY_KEYS.failbackInPlace]: null })
  }
  let writing = false
  cleanup.defer(`the start block on the original VM ${entry.original!.name}`, async () => {
    if (!writing) return restore()
    original.cut = true
    for (const op of BLOCKED_START_OPERATIONS) await blockOperation(source, vm, op, FAILBACK_INTERRUPTED_REASON)
  })
  for (const op of BLOCKED_START_OPERATIONS) await blockOperation(source, vm, op, FAILBACK_IMPORTING_REASON, opts)
  await setVmOtherConfig(source, vm, { [RECOVERY_KEYS.failbackInPlace]: entry.replica.uuid }, opts)
  writing = true
  return {
    vm,
    landings: metadata.disks.map(disk => {
      // the plan refused in place unless every disk has a delta onto an original disk
      const delta = plannedDisk(entry, disk)!.delta!
      return { snapshotDisk: disk, base: asRef<'VDI'>(delta.replica.ref), into: asRef<'VDI'>(delta.original!.ref) }
    }),
    async finish() {
      writing = false
      await restore()
    },
  }
}

/** Streams one disk of the failback snapshot (delta on its replica disk) into its landing. */
async function sendDisk(
  ctx: VmContext,
  entry: ReadyFailback,
  landing: Landing,
  signal: AbortSignal,
): Promise<FailbackDiskResult> {
  const { source, target } = ctx
  const into = await source.getRecord('VDI', landing.into, { signal })
  const disk = landing.snapshotDisk
  const progress = throttleProgress(p =>
    ctx.emit({
      kind: 'disk-progress',
      vm: { uuid: entry.failedOver.uuid, name: entry.failedOver.name },
      srUuid: ctx.sourceSrUuids.get(into.SR) ?? '',
      disk: { uuid: disk.vdi.uuid, name: disk.vdi.name_label, userdevice: disk.vbd.userdevice },
      mode: landing.base === undefined ? 'full' : 'delta',
      bytes: p.bytes,
      ...(p.total === undefined ? {} : { total: p.total }),
      virtualSize: disk.vdi.virtual_size,
    }),
  )
  const result = await transferDisk({
    source: target,
    vdi: disk.vdiRef,
    ...(landing.base === undefined ? {} : { base: landing.base }),
    target: source,
    targetVdi: landing.into,
    ...(ctx.limiter === undefined ? {} : { limiter: ctx.limiter }),
    signal,
    onProgress: progress,
  })
  progress({ bytes: result.bytes, total: result.bytes }, true)
  return {
    userdevice: disk.vbd.userdevice,
    name: disk.vdi.name_label,
    vdi: { uuid: into.uuid, name: into.name_label },
    bytes: result.bytes,
  }
}
