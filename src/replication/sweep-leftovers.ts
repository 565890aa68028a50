/**
 * The start of a VM's pass: whatever an interrupted pass of this job left for this VM goes
 * first (it holds the VM's lease, so no other run is building those objects), which also frees
 * the SR space a half-made replica took. Found in the records the plan was made from, plus two
 * small reads the plan does not need:
 * - the tasks of each pool (few: their clients destroy them, XAPI collects the rest): a finished
 *   one whose `task.destroy` failed is the job's when it names a disk of the job or made one of
 *   its objects, and a transfer task still pending for a disk of the VM is a killed run's, since
 *   the sweep holds the VM's lease (`leftovers.ts`);
 * - the target disks named as one of the VM's disks: a disk made before its VBD is attached to
 *   nothing, so the plan, which reads only the disks of the job's VMs, does not see it — a clone
 *   whose `VDI.clone` task vanished before it said what it made is one (its name is its base's,
 *   its keys the base replica's).
 * When the records show a replica left incomplete, the target's disks are all read again instead.
 * The two reads are skipped when the run that held the VM's lease before says it left the VM
 * tidy (`tidy`: its passes succeeded with no call failed, vm-lease.ts) and the records show
 * nothing: such a run destroyed every task it made and left no disk unattached.
 */
import type { XapiClient } from '../xapi/client.js'
import { fieldIn, getAllRecordsWhere } from '../xapi/records.js'
import type { PassEventSink, VmIdentity } from './events.js'
import {
  findLeftovers,
  removeLeftovers,
  type Leftover,
  type LeftoverRecords,
  type LeftoverSearch,
  type LeftoverVdiRecord,
} from './leftovers.js'
import { KEYS } from './metadata.js'

export interface SweepContext {
  readonly jobId: string
  readonly source: XapiClient
  readonly target: XapiClient
  readonly records: { readonly source: LeftoverRecords; readonly target: LeftoverRecords }
  readonly emit: PassEventSink
  /** the previous holder of the VM's lease left it tidy */
  readonly tidy?: boolean
  readonly signal?: AbortSignal
}

const describe = (l: Leftover): string => `${l.kind} ${l.name} (${l.uuid})`

/** Removes the leftovers of `vm`'s earlier passes; failures are warnings, never the VM's failure. */
export async function sweepLeftovers(ctx: SweepContext, vm: VmIdentity): Promise<void> {
  const opts = ctx.signal === undefined ? {} : { signal: ctx.signal }
  const only = new Set([vm.uuid])
  const samePool = ctx.source === ctx.target
  const records = { source: ctx.records.source, target: samePool ? ctx.records.source : ctx.records.target }
  const base: LeftoverSearch = { jobId: ctx.jobId, ...records, jobVms: only, only }
  const seen = findLeftovers(base)
  if (ctx.tidy === true && seen.remove.length === 0 && seen.keep.length === 0) return
  const incomplete = seen.remove.some(l => l.kind === 'replica')
  const [sourceTasks, targetTasks, vdis] = await Promise.all([
    ctx.source.getAllRecords('task', opts),
    samePool ? undefined : ctx.target.getAllRecords('task', opts),
    incomplete
      ? ctx.target.getAllRecords('VDI', opts)
      : getAllRecordsWhere(ctx.target, 'VDI', fieldIn('name__label', diskNames(records, vm.uuid)), opts),
  ])
  const target: LeftoverRecords = {
    vms: records.target.vms,
    vdis: new Map<string, LeftoverVdiRecord>([...records.target.vdis, ...vdis]),
    tasks: targetTasks ?? sourceTasks,
  }
  const search: LeftoverSearch = samePool
    ? { ...base, source: target, target }
    : { ...base, source: { ...records.source, tasks: sourceTasks }, target }
  const found = findLeftovers(search)
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

/**
 * The names a disk a pass made for `vmUuid` on the target can have: a clone keeps its base
 * replica disk's name until the pass renames it, a new disk takes its source disk's name, which
 * the VM's snapshot disks share.
 */
function diskNames(records: { source: LeftoverRecords; target: LeftoverRecords }, vmUuid: string): string[] {
  const names = new Set<string>()
  for (const { vdis } of [records.source, records.target])
    for (const vdi of vdis.values()) if (vdi.other_config[KEYS.vm] === vmUuid) names.add(vdi.name_label)
  return [...names]
}
