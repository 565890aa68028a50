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
import { createReplicaVm } from '../delta/import-vm.js'
import type { RateLimiter } from '../delta/rate-limit.js'
import { transferDisk } from '../delta/transfer-disk.js'
import type { XapiClient } from '../xapi/client.js'
import { asRef } from '../xapi/types.js'
import { setVdiOtherConfig } from '../xapi/vdi.js'
import { setVmOtherConfig } from '../xapi/vm.js'
import { destroyVmAndDisks } from './destroy.js'
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
} from './metadata.js'
import type { VmPlan } from './plan.js'
import { REPLICA_POLICY } from './replica-policy.js'
import { takeJobSnapshot } from './take-job-snapshot.js'

export interface VmContext {
  readonly job: { readonly id: string; readonly name: string; readonly networkMap: Readonly<Record<string, string>> }
  readonly source: XapiClient
  readonly target: XapiClient
  readonly limiter?: RateLimiter
  readonly signal?: AbortSignal
  readonly emit: PassEventSink
  readonly now: () => Date
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
  try {
    const { bytes, replicas } = await transfer(ctx, plan, cleanup, local)
    cleanup.commit()
    await rotate(ctx, plan, vm)
    return { status: 'success', vm, mode: plan.mode, bytes, durationMs: Date.now() - started, replicas }
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
    const info = ctx.signal?.aborted === true && !isXenCrError(error) ? errorInfo(new AbortedError()) : errorInfo(error)
    return { status: 'failed', vm, durationMs: Date.now() - started, error: info }
  } finally {
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

async function transfer(
  ctx: VmContext,
  plan: VmPlan,
  cleanup: CleanupStack,
  controller: AbortController,
): Promise<{ bytes: number; replicas: ReplicaInfo[] }> {
  const { source, target } = ctx
  const signal = controller.signal
  const opts = { signal }
  const id = plan.identity
  const vmRef = asRef<'VM'>(plan.vm.ref)

  const { ref: snapRef, metadata } = await takeJobSnapshot(source, vmRef, {
    id,
    jobName: ctx.job.name,
    vmName: plan.vm.name,
    at: ctx.now(),
    cleanup,
    signal,
  })

  const transferStart = ctx.now()
  const name = replicaName(plan.vm.name, ctx.job.name, transferStart)
  let bytes = 0
  const perSr = plan.targets.map(async (srPlan): Promise<ReplicaInfo> => {
    const sr = asRef<'SR'>(srPlan.sr.ref)
    const disks = metadata.disks.map(disk => {
      // Disks are matched to the plan through the live disk they are snapshots of, never by position.
      const planned = srPlan.disks.find(d => d.vdi.ref === disk.vdi.snapshot_of)
      const delta =
        planned?.mode === 'delta' && planned.baseSnapshotVdi !== undefined && planned.targetBaseVdi !== undefined
          ? planned
          : undefined
      return {
        disk,
        ...(delta === undefined
          ? {}
          : { cloneOf: asRef<'VDI'>(delta.targetBaseVdi!.ref), base: asRef<'VDI'>(delta.baseSnapshotVdi!.ref) }),
        otherConfig: replicaVdiKeys(
          id,
          srPlan.sr.uuid,
          { vdiUuid: disk.vdi.uuid, contentKey: contentKeyOf(disk.vdi) },
          PLACEHOLDER_DATETIME,
        ),
      }
    })
    const created = await createReplicaVm({
      target,
      metadata,
      sr,
      name,
      otherConfig: replicaVmKeys(id, srPlan.sr.uuid, metadata.vm.uuid, PLACEHOLDER_DATETIME),
      disks,
      policy: REPLICA_POLICY,
      networkMap: ctx.job.networkMap,
      cleanup,
      signal,
      warn: (code, message) =>
        ctx.emit({ kind: 'warning', vm: { uuid: plan.vm.uuid, name: plan.vm.name }, code, message }),
    })
    await allOrAbort(
      disks.map(async (d, i) => {
        const targetVdi = created.vdis[i]!
        const result = await transferDisk({
          source,
          vdi: d.disk.vdiRef,
          ...(d.base === undefined ? {} : { base: d.base }),
          target,
          targetVdi,
          ...(ctx.limiter === undefined ? {} : { limiter: ctx.limiter }),
          signal,
          onProgress: n =>
            ctx.emit({
              kind: 'disk-progress',
              vm: { uuid: plan.vm.uuid, name: plan.vm.name },
              srUuid: srPlan.sr.uuid,
              disk: { uuid: d.disk.vdi.uuid, name: d.disk.vdi.name_label, userdevice: d.disk.vbd.userdevice },
              mode: d.base === undefined ? 'full' : 'delta',
              bytes: n,
              virtualSize: d.disk.vdi.virtual_size,
            }),
        })
        bytes += result.bytes
      }),
      controller,
    )
    await setVmOtherConfig(target, created.vm, { [KEYS.deltaChainLength]: String(plan.nextDeltaChainLength) }, opts)
    await finaliseReplica({
      target,
      vm: created.vm,
      name,
      vdis: created.vdis.map((ref, i) => ({ ref, name: disks[i]!.disk.vdi.name_label })),
      policy: REPLICA_POLICY,
      completeKeys: replicaCompleteKeys(formatXapiDateTime(transferStart)),
      signal,
    })
    const record = await target.getRecord('VM', created.vm, opts)
    return { srUuid: srPlan.sr.uuid, srName: srPlan.sr.name, uuid: record.uuid, name }
  })
  const replicas = await allOrAbort(perSr, controller)

  // The success marker goes on the snapshot only once every replica is complete.
  await setVmOtherConfig(source, snapRef, exportedKeys(plan.nextDeltaChainLength), opts)
  for (const disk of metadata.disks)
    await setVdiOtherConfig(source, disk.vdiRef, exportedKeys(plan.nextDeltaChainLength), opts)
  if (signal.aborted) throw new AbortedError(`pass of VM ${plan.vm.name} aborted`)
  return { bytes, replicas }
}

/**
 * Retention after success: old replicas per schedule/SR/VM, then older source snapshots. A
 * failure here is a warning: the new replica and its base are complete and safe.
 */
async function rotate(ctx: VmContext, plan: VmPlan, vm: VmIdentity): Promise<void> {
  const jobs: { client: XapiClient; ref: string; what: string }[] = [
    ...plan.targets.flatMap(t =>
      t.deleteReplicas.map(r => ({ client: ctx.target, ref: r.ref, what: `replica ${r.name} (${r.uuid})` })),
    ),
    ...plan.deleteSnapshots.map(s => ({
      client: ctx.source,
      ref: s.ref,
      what: `source snapshot ${s.name} (${s.uuid})`,
    })),
  ]
  for (const j of jobs) {
    try {
      await destroyVmAndDisks(j.client, asRef<'VM'>(j.ref))
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
