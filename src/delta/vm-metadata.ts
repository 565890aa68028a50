/**
 * The export side's metadata: what a replica needs to be assembled on another pool — the
 * snapshot VM record, its disks (VBD + VDI), and its VIFs with their network's uuid, name and
 * VLAN (so the target can map them without seeing the source pool).
 */
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

export interface DeltaVmMetadata {
  readonly vmRef: Ref<'VM'>
  readonly vm: VmRecord
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
  return { vmRef, vm, disks, vifs }
}
