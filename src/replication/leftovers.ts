/**
 * What interrupted passes of a job left on its pools, and removing it. Every object a pass
 * creates carries the job's keys (or, for the instant between `VM.snapshot` and the keys, the
 * temporary snapshot name on a snapshot of one of the job's VMs), so leftovers are found by those
 * keys alone — never by a blocked start, which `VM.create` resets — and nothing else is touched:
 * - a VM with the job's keys and the placeholder datetime (an `[Importing…]` replica, start
 *   blocked or not), unless it is the live VM of an in-place replica (it has snapshots);
 * - a snapshot of one of the job's source VMs with the job's keys, never marked exported, whose
 *   copy no complete replica is, or still under the temporary name;
 * - a disk with the job's keys attached to nothing (a clone made before its VBD, a snapshot or
 *   replica disk whose VM went first).
 * Finding is a pure function of records (`findLeftovers`); removing re-reads each object and
 * removes it only if it is still a leftover (`removeLeftovers`).
 */
import { isXapiError } from '../errors.js'
import type { CallOptions, XapiClient } from '../xapi/client.js'
import { parseTaskResult } from '../xapi/task-result.js'
import { asRef } from '../xapi/types.js'
import { destroyVdi } from '../xapi/vdi.js'
import { destroyVmAndDisks } from './destroy.js'
import { KEYS, TEMP_SNAPSHOT_NAME, isPlaceholderDatetime, readReplica } from './metadata.js'

type Strings = Readonly<Record<string, string>>

/** The fields of a VM record the search reads. */
export interface LeftoverVmRecord {
  readonly uuid: string
  readonly name_label: string
  readonly power_state: string
  readonly is_a_snapshot: boolean
  readonly is_a_template: boolean
  readonly snapshot_of: string
  readonly snapshots: readonly string[]
  readonly other_config: Strings
  readonly blocked_operations: Strings
}

/** The fields of a VDI record the search reads. */
export interface LeftoverVdiRecord {
  readonly uuid: string
  readonly name_label: string
  readonly is_a_snapshot: boolean
  /** false for a base copy: the storage's frozen parent of a chain, never removed here */
  readonly managed: boolean
  readonly VBDs: readonly string[]
  readonly other_config: Strings
}

/** The fields of a task record the search reads. */
export interface LeftoverTaskRecord {
  readonly uuid: string
  readonly name_label: string
  readonly status: string
  /** the XML-RPC encoding of what a successful task returned, e.g. the ref of what it made */
  readonly result: string
}

/** VMs and VDIs of one pool, keyed by ref; its tasks when they are to be searched too. */
export interface LeftoverRecords {
  readonly vms: ReadonlyMap<string, LeftoverVmRecord>
  readonly vdis: ReadonlyMap<string, LeftoverVdiRecord>
  readonly tasks?: ReadonlyMap<string, LeftoverTaskRecord>
}

export type LeftoverKind = 'replica' | 'snapshot' | 'disk' | 'task'

/**
 * The label of the task xen-cr creates for a disk transfer (`xapi/transfer.ts`), which names the
 * disk: a finished one whose disk carries the job's keys is the job's.
 */
const TRANSFER_TASK = /^xen-cr: (?:export|import) VDI (\S+) /

/**
 * The `Async.*` calls by which earlier versions of xen-cr made the job's objects (a pass now makes
 * them with plain calls, no task): their tasks say nothing of who made them but their result
 * names what they made, and one that made a snapshot or disk carrying the job's keys is the job's. (The tasks of other calls — a destroy, a start — name nothing; XAPI
 * collects finished tasks itself after about an hour.)
 */
const MAKING_TASKS: Readonly<Record<string, 'VM' | 'VDI'>> = { 'Async.VM.snapshot': 'VM', 'Async.VDI.clone': 'VDI' }

/** What a finished task's record says it returned, when that is one object's ref. */
function resultRef(task: LeftoverTaskRecord): string | undefined {
  if (task.status !== 'success' || task.result === '') return undefined
  try {
    const value = parseTaskResult(task.result)
    return typeof value === 'string' && value !== '' ? value : undefined
  } catch {
    return undefined
  }
}

/** One object an interrupted pass left. */
export interface Leftover {
  /** the job's source or target pool (the same pool when the job replicates within one) */
  readonly pool: 'source' | 'target'
  readonly kind: LeftoverKind
  readonly ref: string
  readonly uuid: string
  readonly name: string
  /** the source VM it was made for, as its keys (or its snapshot_of) say */
  readonly vmUuid: string | undefined
  /** why it is a leftover, one phrase */
  readonly why: string
}

/** A leftover that is not removed, and why. */
export interface KeptLeftover extends Leftover {
  readonly reason: string
}

export interface LeftoverSearch {
  readonly jobId: string
  readonly source: LeftoverRecords
  /** the same object as `source` when the job replicates within one pool */
  readonly target: LeftoverRecords
  /**
   * uuids of the source VMs the job replicates: a snapshot of one of them still under the
   * temporary name is a leftover (its keys were not written yet)
   */
  readonly jobVms: ReadonlySet<string>
  /** only leftovers made for these source VMs (uuids); all of the job's when absent */
  readonly only?: ReadonlySet<string>
}

export interface LeftoverReport {
  readonly remove: readonly Leftover[]
  /** leftovers found but not removable now (a VM someone started) */
  readonly keep: readonly KeptLeftover[]
}

const isJobs = (oc: Strings, jobId: string): boolean => oc[KEYS.job] === jobId

type Verdict = { readonly kind: LeftoverKind; readonly vmUuid: string | undefined; readonly why: string } | undefined

/**
 * Why `vm` is a leftover of the job, or undefined. `vms` is its pool's VMs; `copied` the uuids of
 * the source snapshots some complete replica of the job is a copy of.
 */
function vmVerdict(
  vm: LeftoverVmRecord,
  search: LeftoverSearch,
  vms: ReadonlyMap<string, LeftoverVmRecord>,
  copied: ReadonlySet<string>,
): Verdict {
  const oc = vm.other_config
  if (vm.is_a_snapshot) {
    // only snapshots of the source VMs the job replicates: a target snapshot (XO's era C keeps
    // its copies as snapshots of the replica, never marked exported) is a replica, not debris
    const of = vms.get(vm.snapshot_of)
    if (of === undefined || !search.jobVms.has(of.uuid)) return undefined
    if (vm.name_label === TEMP_SNAPSHOT_NAME)
      return { kind: 'snapshot', vmUuid: of.uuid, why: 'snapshot left under its temporary name by an interrupted pass' }
    if (!isJobs(oc, search.jobId) || oc[KEYS.exported] !== undefined) return undefined
    // a snapshot of a replica (it carries `xo:backup:sr`): a restore point of XO 6.3+'s in-place
    // layout, never exported by design — not a source snapshot an interrupted pass left
    if (oc[KEYS.sr] !== undefined) return undefined
    // the pass stopped after its replica was complete, before marking the snapshot: it stays
    if (copied.has(vm.uuid)) return undefined
    return { kind: 'snapshot', vmUuid: oc[KEYS.vm], why: 'snapshot of an interrupted pass, never exported' }
  }
  if (vm.is_a_template || !isJobs(oc, search.jobId)) return undefined
  const datetime = oc[KEYS.datetime]
  if (datetime === undefined || !isPlaceholderDatetime(datetime)) return undefined
  // XO's in-place replica is a live VM it snapshots each run, with the placeholder while XO runs
  if (vm.snapshots.length > 0) return undefined
  return { kind: 'replica', vmUuid: oc[KEYS.vm], why: 'replica left incomplete by an interrupted pass' }
}

function vdiVerdict(vdi: LeftoverVdiRecord, search: LeftoverSearch): Verdict {
  if (!vdi.managed || !isJobs(vdi.other_config, search.jobId) || vdi.VBDs.length > 0) return undefined
  return {
    kind: 'disk',
    vmUuid: vdi.other_config[KEYS.vm],
    why: vdi.is_a_snapshot ? 'snapshot disk attached to nothing' : 'disk attached to nothing',
  }
}

function taskVerdict(task: LeftoverTaskRecord, search: LeftoverSearch, records: LeftoverRecords): Verdict {
  const vdiRef = TRANSFER_TASK.exec(task.name_label)?.[1]
  if (vdiRef !== undefined) {
    const vdi = records.vdis.get(vdiRef)
    if (vdi === undefined || !isJobs(vdi.other_config, search.jobId)) return undefined
    // Still pending, it is a run's that is gone: whoever sweeps holds the VM's lease, so no
    // other run streams its disks; no request runs in it any more, so nothing would complete it.
    const pending = task.status === 'pending' || task.status === 'cancelling'
    return {
      kind: 'task',
      vmUuid: vdi.other_config[KEYS.vm],
      why: pending
        ? 'disk transfer task of a run that is gone, never completed'
        : `${task.status} disk transfer task left by a pass`,
    }
  }
  // a pending Async task names nothing yet
  const made = MAKING_TASKS[task.name_label]
  const ref = made === undefined ? undefined : resultRef(task)
  if (ref === undefined) return undefined
  const vmUuid = made === 'VM' ? jobVmMadeBy(ref, search, records.vms) : jobVdiMadeBy(ref, search, records.vdis)
  if (vmUuid === undefined) return undefined
  return { kind: 'task', vmUuid, why: `finished ${task.name_label} task left by a pass` }
}

/** The source VM a VM made by a task was made for, when it is the job's: by its keys, or a snapshot of a job VM still under the temporary name. */
function jobVmMadeBy(
  ref: string,
  search: LeftoverSearch,
  vms: ReadonlyMap<string, LeftoverVmRecord>,
): string | undefined {
  const vm = vms.get(ref)
  if (vm === undefined) return undefined
  if (isJobs(vm.other_config, search.jobId)) return vm.other_config[KEYS.vm]
  const of = vm.is_a_snapshot && vm.name_label === TEMP_SNAPSHOT_NAME ? vms.get(vm.snapshot_of) : undefined
  return of !== undefined && search.jobVms.has(of.uuid) ? of.uuid : undefined
}

function jobVdiMadeBy(
  ref: string,
  search: LeftoverSearch,
  vdis: ReadonlyMap<string, LeftoverVdiRecord>,
): string | undefined {
  const vdi = vdis.get(ref)
  return vdi !== undefined && isJobs(vdi.other_config, search.jobId) ? vdi.other_config[KEYS.vm] : undefined
}

/** Uuids of the source snapshots a complete replica of the job (on `target`) is a copy of. */
function copiedSnapshots(jobId: string, target: LeftoverRecords): Set<string> {
  const out = new Set<string>()
  for (const vm of target.vms.values()) {
    if (vm.is_a_template && !vm.is_a_snapshot) continue
    const meta = readReplica(vm)
    if (meta.jobId === jobId && meta.complete && meta.copyOf !== undefined) out.add(meta.copyOf)
  }
  return out
}

/** The job's leftovers on both pools: what to remove, and what must stay (a running VM). */
export function findLeftovers(search: LeftoverSearch): LeftoverReport {
  const copied = copiedSnapshots(search.jobId, search.target)
  const pools: ['source' | 'target', LeftoverRecords][] =
    search.source === search.target
      ? [['target', search.target]]
      : [
          ['source', search.source],
          ['target', search.target],
        ]
  const remove: Leftover[] = []
  const keep: KeptLeftover[] = []
  const wanted = (uuid: string | undefined): boolean =>
    search.only === undefined || (uuid !== undefined && search.only.has(uuid))
  for (const [pool, records] of pools) {
    for (const [ref, vm] of records.vms) {
      const verdict = vmVerdict(vm, search, records.vms, copied)
      if (verdict === undefined || !wanted(verdict.vmUuid)) continue
      const item: Leftover = { pool, ref, uuid: vm.uuid, name: vm.name_label, ...verdict }
      if (vm.power_state === 'Halted') remove.push(item)
      // someone started it: it is theirs to stop; removing it would destroy a running VM
      else keep.push({ ...item, reason: `it is ${vm.power_state.toLowerCase()}; shut it down to let it be removed` })
    }
    for (const [ref, vdi] of records.vdis) {
      const verdict = vdiVerdict(vdi, search)
      if (verdict === undefined || !wanted(verdict.vmUuid)) continue
      remove.push({ pool, ref, uuid: vdi.uuid, name: vdi.name_label, ...verdict })
    }
    for (const [ref, task] of records.tasks ?? []) {
      const verdict = taskVerdict(task, search, records)
      if (verdict === undefined || !wanted(verdict.vmUuid)) continue
      remove.push({ pool, ref, uuid: task.uuid, name: task.name_label, ...verdict })
    }
  }
  return { remove, keep }
}

/** The clients of the job's pools (the same client twice within one pool). */
export interface LeftoverClients {
  readonly source: XapiClient
  readonly target: XapiClient
}

export interface RemovalOutcome {
  readonly removed: readonly Leftover[]
  readonly failed: readonly { readonly item: Leftover; readonly message: string }[]
}

async function recordOrGone<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read()
  } catch (error) {
    if (isXapiError(error, 'HANDLE_INVALID')) return undefined
    throw error
  }
}

/**
 * Removes `items`: VMs first (each with its disks, the disks before the VM), then disks attached
 * to nothing. Each object is read again just before and removed only if it is still a leftover of
 * `search.jobId` (an object gone meanwhile counts as removed). Never throws for one object: its
 * failure is in `failed`.
 */
export async function removeLeftovers(
  items: readonly Leftover[],
  clients: LeftoverClients,
  search: Pick<LeftoverSearch, 'jobId' | 'jobVms'>,
  options: CallOptions & { onRemoved?: (item: Leftover) => void } = {},
): Promise<RemovalOutcome> {
  const opts: CallOptions = options.signal === undefined ? {} : { signal: options.signal }
  const removed: Leftover[] = []
  const failed: { item: Leftover; message: string }[] = []
  // tasks first: a task is the job's by the disk it names, which may be among the leftovers
  const ordered = [
    ...items.filter(i => i.kind === 'task'),
    ...items.filter(i => i.kind !== 'disk' && i.kind !== 'task'),
    ...items.filter(i => i.kind === 'disk'),
  ]
  for (const item of ordered) {
    const client = clients[item.pool]
    try {
      if (await stillLeftover(client, item, search, opts)) {
        if (item.kind === 'task') await destroyTask(client, item.ref, opts)
        else if (item.kind === 'disk') await recordOrGone(() => destroyVdi(client, asRef<'VDI'>(item.ref), opts))
        else await destroyVmAndDisks(client, asRef<'VM'>(item.ref), opts)
      }
      removed.push(item)
      options.onRemoved?.(item)
    } catch (error) {
      if (options.signal?.aborted === true) throw error
      failed.push({ item, message: error instanceof Error ? error.message : String(error) })
    }
  }
  return { removed, failed }
}

/**
 * Destroys a task, completing it first if it is still pending (XAPI only records a destroy of a
 * pending task; a `task.create` task no request runs in is completed by nobody): with
 * `task.set_status` (XAPI 7.5 and later; before, it stays until XAPI collects it). A destroy
 * without an answer is sent again at once: the next pass may not be able to tell that the task
 * is the job's (the object it names goes with rotation), and a second destroy answers
 * HANDLE_INVALID if the first went through, which counts as removed.
 */
async function destroyTask(client: XapiClient, ref: string, opts: CallOptions): Promise<void> {
  const task = await recordOrGone(() => client.getRecord('task', asRef<'task'>(ref), opts))
  if (task === undefined) return
  if (task.status === 'pending' || task.status === 'cancelling')
    await client.call('task.set_status', [ref, 'cancelled'], opts).catch((error: unknown) => {
      if (opts.signal?.aborted === true) throw error
    })
  try {
    await recordOrGone(() => client.call('task.destroy', [ref], opts))
  } catch (error) {
    if (isXapiError(error) || opts.signal?.aborted === true) throw error
    await recordOrGone(() => client.call('task.destroy', [ref], opts))
  }
}

/** Reads `item` again: false when it is gone; throws when it is no longer a leftover of the job. */
async function stillLeftover(
  client: XapiClient,
  item: Leftover,
  search: Pick<LeftoverSearch, 'jobId' | 'jobVms'>,
  opts: CallOptions,
): Promise<boolean> {
  // found finished, naming the job's disk or the job's object it made: a finished task changes no
  // more, and destroying one that is gone meanwhile fails HANDLE_INVALID, which counts as removed
  if (item.kind === 'task') return true
  if (item.kind === 'disk') {
    const vdi = await recordOrGone(() => client.getRecord('VDI', asRef<'VDI'>(item.ref), opts))
    if (vdi === undefined) return false
    if (vdiVerdict(vdi, { ...search, source: EMPTY, target: EMPTY }) === undefined)
      throw new Error(`disk ${item.uuid} changed since it was found (now attached, or its keys differ); left alone`)
    return true
  }
  const vm = await recordOrGone(() => client.getRecord('VM', asRef<'VM'>(item.ref), opts))
  if (vm === undefined) return false
  const snapshotOf =
    item.kind === 'snapshot' ? await recordOrGone(() => client.getRecord('VM', vm.snapshot_of, opts)) : undefined
  const vms = new Map<string, LeftoverVmRecord>(snapshotOf === undefined ? [] : [[vm.snapshot_of, snapshotOf]])
  const verdict = vmVerdict(vm, { ...search, source: EMPTY, target: EMPTY }, vms, new Set())
  if (verdict === undefined || vm.power_state !== 'Halted')
    throw new Error(`${item.kind} ${item.uuid} changed since it was found (completed, started or re-keyed); left alone`)
  return true
}

const EMPTY: LeftoverRecords = { vms: new Map(), vdis: new Map() }

/** What `xen-cr cleanup` reports (the CLI renders them). */
export type CleanupEvent =
  | {
      readonly kind: 'cleanup-plan'
      readonly job: { readonly id: string; readonly name: string }
      /** true: nothing is removed */
      readonly dryRun: boolean
      readonly remove: readonly Leftover[]
      readonly keep: readonly KeptLeftover[]
    }
  | { readonly kind: 'cleanup-removed'; readonly item: Leftover }
  | {
      readonly kind: 'cleanup-done'
      readonly job: { readonly id: string; readonly name: string }
      readonly removed: number
      readonly failed: number
      readonly kept: number
    }
