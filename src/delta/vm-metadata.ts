/**
 * The export side's metadata: what a replica needs to be assembled on another pool — the
 * snapshot VM record, its disks (VBD + VDI), and its VIFs with their network's uuid, name and
 * VLAN (so the target can map them without seeing the source pool).
 */
import { isXapiError } from '../errors.js'
import type { XapiClient } from '../xapi/client.js'
import { isNullRef, type Ref, type VbdRecord, type VdiRecord, type VifRecord, type VmRecord } from '../xapi/types.js'
import type { SourceNetwork } from './network-map.js'

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

/** Reads the metadata of a (snapshot) VM for replication. */
export async function readDeltaMetadata(
  client: XapiClient,
  vmRef: Ref<'VM'>,
  options: { signal?: AbortSignal } = {},
): Promise<DeltaVmMetadata> {
  const opts = options.signal === undefined ? {} : { signal: options.signal }
  const vm = await client.getRecord('VM', vmRef, opts)
  const disks: DeltaDisk[] = []
  for (const vbdRef of vm.VBDs) {
    const vbd = await client.getRecord('VBD', vbdRef, opts)
    if (vbd.type !== 'Disk' || isNullRef(vbd.VDI)) continue
    disks.push({ vbd, vdiRef: vbd.VDI, vdi: await client.getRecord('VDI', vbd.VDI, opts) })
  }
  disks.sort((a, b) => Number(a.vbd.userdevice) - Number(b.vbd.userdevice))
  const vifs: DeltaVif[] = []
  for (const vifRef of vm.VIFs) {
    const vif = await client.getRecord('VIF', vifRef, opts)
    const network = await client.getRecord('network', vif.network, opts)
    const firstPif = network.PIFs[0]
    const vlan = firstPif === undefined ? undefined : (await client.getRecord('PIF', firstPif, opts)).VLAN
    vifs.push({ vif, network: { uuid: network.uuid, name: network.name_label, vlan } })
  }
  vifs.sort((a, b) => Number(a.vif.device) - Number(b.vif.device))
  const source =
    vm.is_a_snapshot && !isNullRef(vm.snapshot_of) ? await sourceSettings(client, vm.snapshot_of, opts) : undefined
  return { vmRef, vm, disks, vifs, ...(source === undefined ? {} : { source }) }
}

async function sourceSettings(
  client: XapiClient,
  ref: Ref<'VM'>,
  opts: { signal?: AbortSignal },
): Promise<SourceVmSettings | undefined> {
  try {
    const vm = await client.getRecord('VM', ref, opts)
    const { order, start_delay, shutdown_delay, ha_restart_priority, ha_always_run } = vm
    return { order, start_delay, shutdown_delay, ha_restart_priority, ha_always_run }
  } catch (error) {
    // the VM was deleted since its snapshot: the snapshot's own values are all there is
    if (isXapiError(error, 'HANDLE_INVALID')) return undefined
    throw error
  }
}
