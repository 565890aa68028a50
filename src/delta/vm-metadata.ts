/**
 * The export side's metadata: what a replica needs to be assembled on another pool — the
 * snapshot VM record, its disks (VBD + VDI), and its VIFs with their network's uuid, name and
 * VLAN (so the target can map them without seeing the source pool).
 */
import { XapiError, isXapiError } from '../errors.js'
import type { XapiClient } from '../xapi/client.js'
import { fieldIs, getAllRecordsWhere, getRecordsByRef } from '../xapi/records.js'
import { isNullRef, type Ref, type VbdRecord, type VdiRecord, type VifRecord, type VmRecord } from '../xapi/types.js'
import type { SourceNetwork } from './network-map.js'
import type { PassNetworks } from './pass-networks.js'

export interface DeltaDisk {
  readonly vbd: VbdRecord
  /** the snapshot's disk */
  readonly vdiRef: Ref<'VDI'>
  readonly vdi: VdiRecord
}

export interface DeltaVif {
  readonly vif: VifRecord
  readonly network: SourceNetwork
}

/** A VM's start order, delays and HA settings: the first three and ha_always_run do not carry over to its snapshots. */
export type SourceVmSettings = Pick<
  VmRecord,
  'order' | 'start_delay' | 'shutdown_delay' | 'ha_restart_priority' | 'ha_always_run'
>

export interface DeltaVmMetadata {
  readonly vmRef: Ref<'VM'>
  readonly vm: VmRecord
  /**
   * The settings of the VM the snapshot was taken of, read from that VM while it exists: a
   * snapshot has order, start_delay and shutdown_delay 0 and ha_always_run false whatever the
   * VM had (xapi_vm_clone), and the replica must start in the source's order.
   */
  readonly source?: SourceVmSettings
  /** Disk VBDs with a VDI, in userdevice order (CDs and empty drives are not replicated) */
  readonly disks: readonly DeltaDisk[]
  readonly vifs: readonly DeltaVif[]
}

/**
 * Reads the metadata of a (snapshot) VM for replication, by query rather than object by object:
 * the VM (with `sourceVm`, the VM it is a snapshot of, in the same query), its VBDs and VIFs,
 * then the disks and networks behind them, then the networks' PIFs — six calls in three rounds
 * however many disks and VIFs it has; with `networks`, a network the pass has read already is not
 * read again (four calls when all are known).
 * @throws XapiError `HANDLE_INVALID` when `vmRef` names nothing
 */
export async function readDeltaMetadata(
  client: XapiClient,
  vmRef: Ref<'VM'>,
  options: { signal?: AbortSignal; sourceVm?: Ref<'VM'>; networks?: PassNetworks } = {},
): Promise<DeltaVmMetadata> {
  const opts = options.signal === undefined ? {} : { signal: options.signal }
  const [vms, vbds, vifRecords] = await Promise.all([
    getRecordsByRef(client, 'VM', options.sourceVm === undefined ? [vmRef] : [vmRef, options.sourceVm], opts),
    getAllRecordsWhere(client, 'VBD', fieldIs('VM', vmRef), opts),
    getAllRecordsWhere(client, 'VIF', fieldIs('VM', vmRef), opts),
  ])
  const vm = vms.get(vmRef)
  if (vm === undefined) throw new XapiError('HANDLE_INVALID', ['VM', vmRef], 'VM.get_all_records_where')
  const diskVbds = [...vbds.values()].filter(vbd => vbd.type === 'Disk' && !isNullRef(vbd.VDI))
  const known = options.networks?.source ?? new Map<string, Promise<SourceNetwork | undefined>>()
  const unknown = [...new Set([...vifRecords.values()].map(vif => vif.network))].filter(ref => !known.has(ref))
  if (unknown.length > 0) {
    // not under this VM's signal: other VMs of the pass may wait on the same read
    const read = readNetworks(client, unknown, options.networks === undefined ? opts : {})
    for (const ref of unknown) {
      const one = read.then(networks => networks.get(ref))
      known.set(ref, one)
      one.catch(() => {
        if (known.get(ref) === one) known.delete(ref)
      })
    }
  }
  const vifNetworks = Promise.all(
    [...vifRecords.values()].map(vif => known.get(vif.network) ?? Promise.resolve(undefined)),
  )
  const [vdis, networks] = await Promise.all([
    getRecordsByRef(
      client,
      'VDI',
      diskVbds.map(vbd => vbd.VDI),
      opts,
    ),
    vifNetworks,
  ])

  const disks: DeltaDisk[] = []
  for (const vbd of diskVbds) {
    const vdi = vdis.get(vbd.VDI)
    // a disk destroyed under us: its VBD went with it (as reading it one by one would have failed)
    if (vdi === undefined) throw new XapiError('HANDLE_INVALID', ['VDI', vbd.VDI], 'VDI.get_all_records_where')
    disks.push({ vbd, vdiRef: vbd.VDI, vdi })
  }
  disks.sort((a, b) => Number(a.vbd.userdevice) - Number(b.vbd.userdevice))
  const vifs: DeltaVif[] = []
  for (const [i, vif] of [...vifRecords.values()].entries()) {
    const network = networks[i]
    if (network === undefined)
      throw new XapiError('HANDLE_INVALID', ['network', vif.network], 'network.get_all_records_where')
    vifs.push({ vif, network })
  }
  vifs.sort((a, b) => Number(a.vif.device) - Number(b.vif.device))
  const source =
    !vm.is_a_snapshot || isNullRef(vm.snapshot_of) ? undefined : await sourceSettings(client, vm, vms, opts)
  return { vmRef, vm, disks, vifs, ...(source === undefined ? {} : { source }) }
}

/** The networks `refs` name, each with its first PIF's VLAN: two queries. */
async function readNetworks(
  client: XapiClient,
  refs: readonly Ref<'network'>[],
  opts: { signal?: AbortSignal },
): Promise<Map<string, SourceNetwork>> {
  const out = new Map<string, SourceNetwork>()
  const networks = await getRecordsByRef(client, 'network', refs, opts)
  const pifRefs = [...networks.values()].flatMap(network => network.PIFs.slice(0, 1))
  const pifs = await getRecordsByRef(client, 'PIF', pifRefs, opts)
  for (const [ref, network] of networks) {
    const firstPif = network.PIFs[0]
    const vlan = firstPif === undefined ? undefined : pifs.get(firstPif)?.VLAN
    out.set(ref, { uuid: network.uuid, name: network.name_label, vlan })
  }
  return out
}

/** The settings of the VM `snapshot` was taken of: from `known` when it was read with it, else read. */
async function sourceSettings(
  client: XapiClient,
  snapshot: VmRecord,
  known: ReadonlyMap<Ref<'VM'>, VmRecord>,
  opts: { signal?: AbortSignal },
): Promise<SourceVmSettings | undefined> {
  const ref = snapshot.snapshot_of
  let vm = known.get(ref)
  if (vm === undefined) {
    try {
      vm = await client.getRecord('VM', ref, opts)
    } catch (error) {
      // the VM was deleted since its snapshot: the snapshot's own values are all there is
      if (isXapiError(error, 'HANDLE_INVALID')) return undefined
      throw error
    }
  }
  const { order, start_delay, shutdown_delay, ha_restart_priority, ha_always_run } = vm
  return { order, start_delay, shutdown_delay, ha_restart_priority, ha_always_run }
}
