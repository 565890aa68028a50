/**
 * The start of a VM's pass: whatever an interrupted pass of this job left for this VM goes
 * first (it holds the VM's lease, so no other run is building those objects), which also frees
 * the SR space a half-made replica took. Found in the records the plan was made from; only when
 * they show a replica left incomplete are the disks read again, since a clone made before its VBD
 * is attached to nothing and a pass that reads only the disks of the job's VMs would not see it.
 */
import type { XapiClient } from '../xapi/client.js'
import type { PassEventSink, VmIdentity } from './events.js'
import {
  findLeftovers,
  removeLeftovers,
  type Leftover,
  type LeftoverRecords,
  type LeftoverSearch,
} from './leftovers.js'

export interface SweepContext {
  readonly jobId: string
  readonly source: XapiClient
  readonly target: XapiClient
  readonly records: { readonly source: LeftoverRecords; readonly target: LeftoverRecords }
  readonly emit: PassEventSink
  readonly signal?: AbortSignal
}

const describe = (l: Leftover): string => `${l.kind} ${l.name} (${l.uuid})`

/** Removes the leftovers of `vm`'s earlier passes; failures are warnings, never the VM's failure. */
export async function sweepLeftovers(ctx: SweepContext, vm: VmIdentity): Promise<void> {
  const opts = ctx.signal === undefined ? {} : { signal: ctx.signal }
  const only = new Set([vm.uuid])
  const samePool = ctx.source === ctx.target
  const search: LeftoverSearch = {
    jobId: ctx.jobId,
    source: ctx.records.source,
    target: samePool ? ctx.records.source : ctx.records.target,
    jobVms: only,
    only,
  }
  let found = findLeftovers(search)
  if (found.remove.some(l => l.kind === 'replica')) {
    const vdis = await ctx.target.getAllRecords('VDI', opts)
    const target = { vms: search.target.vms, vdis }
    found = findLeftovers({ ...search, target, ...(samePool ? { source: target } : {}) })
  }
  for (const kept of found.keep)
    ctx.emit({
      kind: 'warning',
      vm,
      code: 'LEFTOVER_KEPT',
      message: `${describe(kept)}, ${kept.why}, is left: ${kept.reason}`,
    })
  if (found.remove.length === 0) return
  const outcome = await removeLeftovers(found.remove, { source: ctx.source, target: ctx.target }, search, opts)
  if (outcome.removed.length > 0)
    ctx.emit({
      kind: 'warning',
      vm,
      code: 'LEFTOVERS_REMOVED',
      message: `removed what an interrupted pass left: ${outcome.removed.map(describe).join(', ')}`,
    })
  for (const { item, message } of outcome.failed)
    ctx.emit({
      kind: 'warning',
      vm,
      code: 'CLEANUP_FAILED',
      message: `could not remove ${describe(item)} left by an interrupted pass: ${message}; \`xen-cr cleanup\` retries`,
    })
}
