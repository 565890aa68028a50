/**
 * The records a plan reads. A pass reads only what its VMs reach, by reference or by query
 * (`fetchPassRecords`); a seed and a failback still read whole classes (`fetchPoolRecords`).
 */
import type { VmSelection } from '../jobs/types.js'
import type { XapiClient } from '../xapi/client.js'
import { allOf, anyOf, fieldIn, fieldIs, getAllRecordsWhere, getRecordsByRef } from '../xapi/records.js'
import { isNullRef, type RecordOf, type Ref } from '../xapi/types.js'
import { readReplica } from './metadata.js'
import { passVms } from './select-vms.js'

/**
 * VMs, VBDs, VDIs and SRs of one pool, keyed by ref, as whole records: a pass plan
 * (`PoolRecords`) and a seed plan (`SeedRecords`) each read the fields they need from them.
 */
export interface PoolRecordMaps {
  readonly vms: ReadonlyMap<Ref<'VM'>, RecordOf<'VM'>>
  readonly vbds: ReadonlyMap<Ref<'VBD'>, RecordOf<'VBD'>>
  readonly vdis: ReadonlyMap<Ref<'VDI'>, RecordOf<'VDI'>>
  readonly srs: ReadonlyMap<Ref<'SR'>, RecordOf<'SR'>>
}

/** Fetches the four classes concurrently: every object of the pool. */
export async function fetchPoolRecords(
  client: XapiClient,
  options: { signal?: AbortSignal } = {},
): Promise<PoolRecordMaps> {
  const [vms, vbds, vdis, srs] = await Promise.all([
    client.getAllRecords('VM', options),
    client.getAllRecords('VBD', options),
    client.getAllRecords('VDI', options),
    client.getAllRecords('SR', options),
  ])
  return { vms, vbds, vdis, srs }
}

export interface PassRecordsOptions {
  readonly job: { readonly name: string; readonly vms: VmSelection; readonly srs: readonly string[] }
  readonly source: XapiClient
  /** the same client as `source` when replicating within one pool */
  readonly target: XapiClient
  /** only these VMs (as `runPass`'s `vmUuids`) */
  readonly vmUuids?: readonly string[]
  readonly signal?: AbortSignal
}

/**
 * What one pass plans from, read in a few queries whose answers grow with the job's VMs and
 * their history, not with the pools:
 * - source: the VMs the job names (by uuid; a job by tag or `all` needs the live VMs of the
 *   pool: snapshots, templates and dom0 are filtered out by the host), their snapshots, and the
 *   VBDs and VDIs of both;
 * - target: the job's SRs by uuid, and every VM (the job's replicas are known by `other_config`
 *   keys, which XAPI's filter language cannot match: this is the one view over a whole class),
 *   plus the VBDs and VDIs of only the copies of this pass's snapshots.
 * Independent queries run at once. Within one pool, one set of maps holds both sides.
 * @throws UsageError `VM_NOT_IN_JOB` as {@link passVms}
 */
export async function fetchPassRecords(
  o: PassRecordsOptions,
): Promise<{ readonly source: PoolRecordMaps; readonly target: PoolRecordMaps }> {
  const call = o.signal === undefined ? {} : { signal: o.signal }
  const targetView = Promise.all([
    getAllRecordsWhere(o.target, 'SR', fieldIn('uuid', o.job.srs), call),
    getAllRecordsWhere(o.target, 'VM', fieldIs('is_control_domain', 'false'), call),
  ])
  // Settled by the awaits below; a rejection before then must not go unhandled.
  targetView.catch(() => undefined)

  const source = await sourceRecords(o, call)
  const [srs, targetVms] = await targetView
  // The target VMs whose disks a plan reads: copies of this pass's snapshots (replicas, era-C
  // target snapshots, seeded templates). Every other keyed VM is read by its record alone.
  const snapshotUuids = new Set<string>()
  for (const vm of source.vms.values()) if (vm.is_a_snapshot) snapshotUuids.add(vm.uuid)
  const copies: string[] = []
  for (const [ref, vm] of targetVms) {
    const copyOf = readReplica(vm).copyOf
    if (copyOf !== undefined && snapshotUuids.has(copyOf)) copies.push(ref)
  }
  const { vbds, vdis } = await disksOfVms(o.target, copies, call)
  const target: PoolRecordMaps = { vms: targetVms, vbds, vdis, srs }
  if (o.source !== o.target) return { source, target }
  const both: PoolRecordMaps = {
    vms: new Map([...targetVms, ...source.vms]),
    vbds: new Map([...vbds, ...source.vbds]),
    vdis: new Map([...vdis, ...source.vdis]),
    srs,
  }
  return { source: both, target: both }
}

/** The job's VMs on the source, their snapshots, and the VBDs and VDIs of both. */
async function sourceRecords(o: PassRecordsOptions, call: { signal?: AbortSignal }): Promise<PoolRecordMaps> {
  const { vms: selection } = o.job
  const named = o.vmUuids ?? selection.uuids
  const byView = o.vmUuids === undefined && (selection.all || selection.tags.length > 0)
  const live = allOf([
    fieldIs('is_a_snapshot', 'false'),
    fieldIs('is_a_template', 'false'),
    fieldIs('is_control_domain', 'false'),
  ])
  const vms = await getAllRecordsWhere(
    o.source,
    'VM',
    byView ? anyOf([live, fieldIn('uuid', named)]) : fieldIn('uuid', named),
    call,
  )
  const chosen = passVms(o.job, vms, o.vmUuids).vmRefs
  // A VM's record lists its snapshots: their records and every VBD of both come at once.
  const snapshotRefs = chosen.flatMap(ref => vms.get(ref as Ref<'VM'>)?.snapshots ?? [])
  const [snapshots, { vbds, vdis }] = await Promise.all([
    getRecordsByRef(o.source, 'VM', snapshotRefs, call),
    disksOfVms(o.source, [...chosen, ...snapshotRefs], call),
  ])
  const all = new Map(vms)
  for (const [ref, snapshot] of snapshots) all.set(ref, snapshot)
  return { vms: all, vbds, vdis, srs: new Map() }
}

/** The VBDs of these VMs and the VDIs behind them: two queries, however many VMs and disks. */
async function disksOfVms(
  client: XapiClient,
  vmRefs: readonly string[],
  call: { signal?: AbortSignal },
): Promise<{ vbds: Map<Ref<'VBD'>, RecordOf<'VBD'>>; vdis: Map<Ref<'VDI'>, RecordOf<'VDI'>> }> {
  const vbds = await getAllRecordsWhere(client, 'VBD', fieldIn('VM', vmRefs), call)
  const vdiRefs = [...vbds.values()].map(vbd => vbd.VDI).filter(ref => !isNullRef(ref))
  return { vbds, vdis: await getRecordsByRef(client, 'VDI', vdiRefs, call) }
}
