/**
 * Applying one VM's plan: snapshot (keys on the snapshot VM and its disks), one replica per
 * target SR assembled from the snapshot's metadata with every disk streamed concurrently, the
 * replica's real datetime written last, the `exported` marker on the snapshot, then rotation.
 * Atomic: until the last step succeeds, everything this pass created is registered for undo,
 * and any failure or abort destroys it — the previous replica and base snapshot stay.
 */
import { setMaxListeners } from 'node:events'
import { AbortedError, isXenCrError } from '../errors.js'
import { CleanupStack } from '../delta/cleanup.js'
import { finaliseReplica } from '../delta/finalise-replica.js'
import type { PassNetworks } from '../delta/pass-networks.js'
import { createReplicaVm, type ReplicaDiskSpec } from '../delta/import-vm.js'
import type { RateLimiter } from '../delta/rate-limit.js'
import { transferDisk } from '../delta/transfer-disk.js'
import type { DeltaDisk, DeltaVmMetadata } from '../delta/vm-metadata.js'
import type { XapiClient } from '../xapi/client.js'
import { DISK_RETRY } from '../xapi/retry.js'
import { asRef, type Ref } from '../xapi/types.js'
import { replaceVdiOtherConfig } from '../xapi/vdi.js'
import { replaceVmOtherConfig } from '../xapi/vm.js'
import { adoptSeedTemplates } from './adopt-seed.js'
import { destroyVmAndDisks } from './destroy.js'
import type { LeftoverRecords, LeftoverVdiRecord, LeftoverVmRecord } from './leftovers.js'
import type { PassEventSink, ReplicaInfo, VmIdentity, VmResult } from './events.js'
import {
  KEYS,
  PLACEHOLDER_DATETIME,
  contentKeyOf,
  exportedKeys,
  formatXapiDateTime,
  replicaCompleteKeys,
  replicaName,
  replicaVdiKeys,
  replicaVmKeys,
  type PassIdentity,
} from './metadata.js'
import type { SrPlan, VmPlan } from './plan.js'
import { throttleProgress } from './progress-throttle.js'
import { REPLICA_POLICY } from './replica-policy.js'
import { sweepLeftovers } from './sweep-leftovers.js'
import { takeJobSnapshot } from './take-job-snapshot.js'

/** What a VM's pass reads in the records its plan was made from. */
export interface VmRecords extends LeftoverRecords {
  readonly vms: ReadonlyMap<string, LeftoverVmRecord & { readonly VBDs: readonly string[] }>
  readonly vbds: ReadonlyMap<string, { readonly VM: string; readonly VDI: string; readonly type: string }>
  readonly vdis: ReadonlyMap<string, LeftoverVdiRecord & { readonly virtual_size: number }>
}

export interface VmContext {
  readonly job: { readonly id: string; readonly name: string; readonly networkMap: Readonly<Record<string, string>> }
  readonly source: XapiClient
  readonly target: XapiClient
  readonly limiter?: RateLimiter
  readonly signal?: AbortSignal
  /** one VM's pass may take this long, ms; 0 or absent: no limit */
  readonly vmTimeoutMs?: number
  readonly emit: PassEventSink
  readonly now: () => Date
  /**
   * the pools' records the plan was made from: what interrupted passes of the VM left is found in
   * them and removed before the snapshot (`sweep-leftovers.ts`); nothing is swept without them
   */
  readonly records?: { readonly source: VmRecords; readonly target: VmRecords }
  /** the pass's networks, read once per pass rather than once per VM */
  readonly networks?: PassNetworks
  /** the run that held the VM's lease before left it tidy: leftovers are looked for in `records` only */
  readonly previousTidy?: boolean
}

function errorInfo(error: unknown): { code: string; message: string } {
  if (isXenCrError(error)) return { code: error.code, message: error.message }
  return { code: 'UNEXPECTED', message: error instanceof Error ? error.message : String(error) }
}

/** Runs `plan` for its VM; never throws — a failure is a `failed` result. */
export async function executeVm(ctx: VmContext, plan: VmPlan): Promise<VmResult> {
  const started = Date.now()
  const vm: VmIdentity = { uuid: plan.vm.uuid, name: plan.vm.name }
  const cleanup = new CleanupStack()
  // One controller per VM: the first disk that fails stops the others at once.
  const local = new AbortController()
  // Every call and stream of the VM listens on this signal; dozens at once is expected.
  setMaxListeners(0, local.signal)
  const onAbort = (): void => local.abort(ctx.signal?.reason)
  ctx.signal?.addEventListener('abort', onAbort, { once: true })
  // The VM timeout cancels this VM alone, as a failed disk would: its work is undone, the
  // other VMs of the pass go on.
  const vmTimeoutMs = ctx.vmTimeoutMs ?? 0
  const timedOut =
    vmTimeoutMs > 0
      ? new AbortedError(
          `VM ${plan.vm.name} took longer than the VM timeout of ${vmTimeoutMs / 1000} s (timeouts.vm, --vm-timeout); its pass was cancelled and undone`,
        )
      : undefined
  const timer = timedOut === undefined ? undefined : setTimeout(() => local.abort(timedOut), vmTimeoutMs)
  try {
    if (ctx.records !== undefined) {
      const { job, source, target, records, emit } = ctx
      const tidy = ctx.previousTidy === true
      await sweepLeftovers({ jobId: job.id, source, target, records, emit, tidy, signal: local.signal }, vm)
    }
    const { bytes, disks, replicas } = await transfer(ctx, plan, cleanup, local)
    cleanup.commit()
    await rotate(ctx, plan, vm)
    return { status: 'success', vm, mode: plan.mode, bytes, disks, durationMs: Date.now() - started, replicas }
  } catch (error) {
    local.abort(error)
    const failures = await cleanup.unwind()
    for (const f of failures) {
      ctx.emit({
        kind: 'warning',
        vm,
        code: 'CLEANUP_FAILED',
        message: `could not remove ${f.label} after the failed pass: ${errorInfo(f.error).message}; remove it by hand`,
      })
    }
    const info =
      timedOut !== undefined && local.signal.reason === timedOut
        ? errorInfo(timedOut)
        : ctx.signal?.aborted === true && !isXenCrError(error)
          ? errorInfo(new AbortedError())
          : errorInfo(error)
    return { status: 'failed', vm, durationMs: Date.now() - started, error: info }
  } finally {
    clearTimeout(timer)
    ctx.signal?.removeEventListener('abort', onAbort)
  }
}

/**
 * Waits for every task; the first failure aborts the others at once, and that first failure (not
 * the aborts it caused) is what is thrown — only once nothing is running any more, so that the
 * cleanup never races a transfer still writing to a disk it is about to destroy.
 */
async function allOrAbort<T>(tasks: readonly Promise<T>[], controller: AbortController): Promise<T[]> {
  let first: { error: unknown } | undefined
  const settled = await Promise.allSettled(
    tasks.map(task =>
      task.catch((error: unknown) => {
        first ??= { error }
        controller.abort(error)
        throw error
      }),
    ),
  )
  if (first !== undefined) throw first.error
  return settled.map(s => (s as PromiseFulfilledResult<T>).value)
}

/** What every SR's replica of one VM's pass shares. */
interface Transfer {
  readonly ctx: VmContext
  readonly plan: VmPlan
  readonly cleanup: CleanupStack
  readonly controller: AbortController
  readonly metadata: DeltaVmMetadata
  /** the replicas' name */
  readonly name: string
  /** the replicas' datetime */
  readonly start: Date
}

async function transfer(
  ctx: VmContext,
  plan: VmPlan,
  cleanup: CleanupStack,
  controller: AbortController,
): Promise<{ bytes: number; disks: number; replicas: ReplicaInfo[] }> {
  const { source } = ctx
  const signal = controller.signal
  const opts = { signal }
  await adoptSeedTemplates(ctx.target, plan.targets, { uuid: plan.vm.uuid, name: plan.vm.name }, ctx.emit, signal)
  const { ref: snapRef, metadata } = await takeJobSnapshot(source, asRef<'VM'>(plan.vm.ref), {
    id: plan.identity,
    jobName: ctx.job.name,
    vmName: plan.vm.name,
    at: ctx.now(),
    cleanup,
    ...(ctx.networks === undefined ? {} : { networks: ctx.networks }),
    signal,
  })

  const start = ctx.now()
  const t: Transfer = {
    ctx,
    plan,
    cleanup,
    controller,
    metadata,
    name: replicaName(plan.vm.name, ctx.job.name, start),
    start,
  }
  const done = await allOrAbort(
    plan.targets.map(srPlan => replicateToSr(t, srPlan)),
    controller,
  )

  // The success marker goes on the snapshot only once every replica is complete: disks first,
  // the VM last (readers take the VM's marker as the snapshot's). Whole maps, from what
  // takeJobSnapshot wrote: nothing else writes a job snapshot's keys.
  const exported = exportedKeys(plan.nextDeltaChainLength)
  for (const disk of metadata.disks)
    await replaceVdiOtherConfig(source, disk.vdiRef, { ...disk.vdi.other_config, ...exported }, opts)
  await replaceVmOtherConfig(source, snapRef, { ...metadata.vm.other_config, ...exported }, opts)
  if (signal.aborted) throw new AbortedError(`pass of VM ${plan.vm.name} aborted`)
  return {
    bytes: done.reduce((n, d) => n + d.bytes, 0),
    disks: metadata.disks.length * plan.targets.length,
    replicas: done.map(d => d.replica),
  }
}

interface TransferDiskSpec extends ReplicaDiskSpec {
  /** the source base snapshot disk (delta only) */
  readonly base?: Ref<'VDI'>
}

/** The replica on one SR: assembled, every disk streamed concurrently, then finalised. */
async function replicateToSr(t: Transfer, srPlan: SrPlan): Promise<{ replica: ReplicaInfo; bytes: number }> {
  const { ctx, plan, metadata, name } = t
  const { target } = ctx
  const signal = t.controller.signal
  const id = plan.identity
  const disks = metadata.disks.map(disk => diskSpec(id, srPlan, disk, ctx.records?.target))
  const created = await createReplicaVm({
    target,
    metadata,
    sr: asRef<'SR'>(srPlan.sr.ref),
    name,
    otherConfig: replicaVmKeys(id, srPlan.sr.uuid, metadata.vm.uuid, PLACEHOLDER_DATETIME),
    disks,
    policy: REPLICA_POLICY,
    networkMap: ctx.job.networkMap,
    ...(ctx.networks === undefined ? {} : { networks: ctx.networks }),
    cleanup: t.cleanup,
    signal,
    warn: (code, message) =>
      ctx.emit({ kind: 'warning', vm: { uuid: plan.vm.uuid, name: plan.vm.name }, code, message }),
  })
  const sent = await allOrAbort(
    disks.map((d, i) => streamDisk(t, srPlan, d, created.vdis[i]!)),
    t.controller,
  )
  const { uuid } = await finaliseReplica({
    target,
    vm: created.vm,
    name,
    vdis: created.vdis.map((ref, i) => ({
      ref,
      name: disks[i]!.disk.vdi.name_label,
      otherConfig: created.vdiOtherConfigs[i]!,
    })),
    policy: REPLICA_POLICY,
    completeKeys: replicaCompleteKeys(formatXapiDateTime(t.start)),
    vmKeys: { [KEYS.deltaChainLength]: String(plan.nextDeltaChainLength) },
    signal,
  })
  return {
    replica: { srUuid: srPlan.sr.uuid, srName: srPlan.sr.name, uuid, name },
    bytes: sent.reduce((n, b) => n + b, 0),
  }
}

/** A snapshot disk's replica: a clone of its base replica's disk when the plan has a delta for it. */
function diskSpec(id: PassIdentity, srPlan: SrPlan, disk: DeltaDisk, target: VmRecords | undefined): TransferDiskSpec {
  // Disks are matched to the plan through the live disk they are snapshots of, never by position.
  const planned = srPlan.disks.find(d => d.vdi.ref === disk.vdi.snapshot_of)
  const base = planned?.mode === 'delta' ? planned.baseSnapshotVdi : undefined
  const targetBase = planned?.mode === 'delta' ? planned.targetBaseVdi : undefined
  const known = targetBase === undefined ? undefined : target?.vdis.get(targetBase.ref)
  return {
    disk,
    ...(base === undefined || targetBase === undefined
      ? {}
      : { cloneOf: asRef<'VDI'>(targetBase.ref), base: asRef<'VDI'>(base.ref) }),
    ...(base === undefined || known === undefined ? {} : { cloneOfRecord: known }),
    otherConfig: replicaVdiKeys(
      id,
      srPlan.sr.uuid,
      { vdiUuid: disk.vdi.uuid, contentKey: contentKeyOf(disk.vdi) },
      PLACEHOLDER_DATETIME,
    ),
  }
}

/** Streams one disk (delta on its base, or full) into its replica disk; resolves to the bytes sent. */
async function streamDisk(t: Transfer, srPlan: SrPlan, d: TransferDiskSpec, targetVdi: Ref<'VDI'>): Promise<number> {
  const { ctx, plan } = t
  const progress = throttleProgress(p =>
    ctx.emit({
      kind: 'disk-progress',
      vm: { uuid: plan.vm.uuid, name: plan.vm.name },
      srUuid: srPlan.sr.uuid,
      disk: { uuid: d.disk.vdi.uuid, name: d.disk.vdi.name_label, userdevice: d.disk.vbd.userdevice },
      mode: d.base === undefined ? 'full' : 'delta',
      bytes: p.bytes,
      ...(p.total === undefined ? {} : { total: p.total }),
      virtualSize: d.disk.vdi.virtual_size,
    }),
  )
  const result = await transferDisk({
    source: ctx.source,
    vdi: d.disk.vdiRef,
    ...(d.base === undefined ? {} : { base: d.base }),
    target: ctx.target,
    targetVdi,
    ...(ctx.limiter === undefined ? {} : { limiter: ctx.limiter }),
    signal: t.controller.signal,
    onProgress: progress,
    onRetry: (error, attempt) =>
      ctx.emit({
        kind: 'warning',
        vm: { uuid: plan.vm.uuid, name: plan.vm.name },
        code: 'DISK_TRANSFER_RETRIED',
        message: `disk ${d.disk.vbd.userdevice} "${d.disk.vdi.name_label}" (${d.disk.vdi.uuid}) to SR ${srPlan.sr.name}: its transfer broke off (${error.message} [${error.code}]); starting it again, attempt ${attempt} of ${DISK_RETRY.attempts}`,
      }),
  })
  // Every byte went through and both tasks succeeded: the stream's length is now a fact.
  progress({ bytes: result.bytes, total: result.bytes }, true)
  return result.bytes
}

/**
 * Retention after success: old replicas per schedule/SR/VM, then older source snapshots. A
 * failure here is a warning: the new replica and its base are complete and safe.
 */
async function rotate(ctx: VmContext, plan: VmPlan, vm: VmIdentity): Promise<void> {
  // A replica about to lose its disks is first dated as an interrupted one: killed half-way, it
  // is a leftover the next pass or `xen-cr cleanup` removes, never a complete replica missing disks.
  const incomplete = { [KEYS.datetime]: PLACEHOLDER_DATETIME }
  const jobs: {
    client: XapiClient
    ref: string
    what: string
    markFirst?: Record<string, string>
    records?: VmRecords
  }[] = [
    ...plan.targets.flatMap(t =>
      t.deleteReplicas.map(r => ({
        client: ctx.target,
        ref: r.ref,
        what: `replica ${r.name} (${r.uuid})`,
        markFirst: incomplete,
        ...(ctx.records === undefined ? {} : { records: ctx.records.target }),
      })),
    ),
    ...plan.deleteSnapshots.map(s => ({
      client: ctx.source,
      ref: s.ref,
      what: `source snapshot ${s.name} (${s.uuid})`,
      ...(ctx.records === undefined ? {} : { records: ctx.records.source }),
    })),
  ]
  for (const j of jobs) {
    try {
      const vbds = j.records === undefined ? undefined : knownVbds(j.records, j.ref)
      await destroyVmAndDisks(j.client, asRef<'VM'>(j.ref), {
        ...(j.markFirst === undefined ? {} : { markFirst: j.markFirst }),
        ...(vbds === undefined ? {} : { vbds }),
      })
    } catch (error) {
      ctx.emit({
        kind: 'warning',
        vm,
        code: 'ROTATION_FAILED',
        message: `could not delete ${j.what}: ${errorInfo(error).message}; it will be retried next pass`,
      })
    }
  }
}

/**
 * Every VBD of `vmRef` as the plan's records hold them, when they hold them all (the VM's record
 * lists its VBDs): a snapshot's or a replica's VBDs do not change once it is made.
 */
function knownVbds(records: VmRecords, vmRef: string): VmRecords['vbds'] | undefined {
  const vm = records.vms.get(vmRef)
  if (vm === undefined) return undefined
  const vbds = new Map<string, { readonly VM: string; readonly VDI: string; readonly type: string }>()
  for (const ref of vm.VBDs) {
    const vbd = records.vbds.get(ref)
    if (vbd === undefined || vbd.VM !== vmRef) return undefined
    vbds.set(ref, vbd)
  }
  return vbds
}
