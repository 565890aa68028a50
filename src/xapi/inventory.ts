/**
 * A pool's VMs, SRs and networks as an operator needs them to write a job: uuids, names and the
 * few fields that decide a choice. The `*Of` functions are pure (records in, rows out); the
 * `read*` ones fetch the records.
 */
import type { CallOptions, XapiClient } from './client.js'
import { isNullRef, type PifRecord, type PoolRecord, type Ref, type VbdRecord, type VdiRecord } from './types.js'

export interface VmInventoryItem {
  readonly uuid: string
  readonly name: string
  readonly powerState: string
  readonly tags: readonly string[]
  /** disks attached through a VBD (CD drives not counted) */
  readonly disks: number
  /** their virtual sizes added up, in bytes */
  readonly diskBytes: number
}

export interface SrInventoryItem {
  readonly uuid: string
  readonly name: string
  /** the SR driver: `lvm`, `ext`, `nfs`, `lvmoiscsi`, … */
  readonly type: string
  /** `iso` for an ISO library, which cannot hold replicas */
  readonly contentType: string
  readonly shared: boolean
  readonly size: number
  readonly free: number
  /** the pool's default SR (what `job create` takes without `--sr`) */
  readonly default: boolean
}

export interface NetworkInventoryItem {
  readonly uuid: string
  readonly name: string
  readonly bridge: string
  /** the VLAN tag of its PIFs; absent for an untagged or a host-internal network */
  readonly vlan?: number
  readonly mtu: number
}

/** The fields the inventory reads (record subsets, so a test can build them). */
interface VmFields {
  readonly uuid: string
  readonly name_label: string
  readonly power_state: string
  readonly tags: readonly string[]
  readonly VBDs: readonly Ref<'VBD'>[]
  readonly is_a_template: boolean
  readonly is_a_snapshot: boolean
  readonly is_control_domain: boolean
}

interface SrFields {
  readonly uuid: string
  readonly name_label: string
  readonly type: string
  readonly content_type: string
  readonly shared: boolean
  readonly physical_size: number
  readonly physical_utilisation: number
}

interface NetworkFields {
  readonly uuid: string
  readonly name_label: string
  readonly bridge: string
  readonly MTU: number
  readonly PIFs: readonly Ref<'PIF'>[]
}

/** The pool's VMs (no templates, snapshots or control domains), by name. */
export function vmInventoryOf(
  vms: ReadonlyMap<Ref<'VM'>, VmFields>,
  vbds: ReadonlyMap<Ref<'VBD'>, Pick<VbdRecord, 'type' | 'VDI'>>,
  vdis: ReadonlyMap<Ref<'VDI'>, Pick<VdiRecord, 'virtual_size'>>,
): VmInventoryItem[] {
  const items: VmInventoryItem[] = []
  for (const vm of vms.values()) {
    if (vm.is_a_template || vm.is_a_snapshot || vm.is_control_domain) continue
    let disks = 0
    let diskBytes = 0
    for (const vbdRef of vm.VBDs) {
      const vbd = vbds.get(vbdRef)
      if (vbd?.type !== 'Disk' || isNullRef(vbd.VDI)) continue
      disks++
      diskBytes += vdis.get(vbd.VDI)?.virtual_size ?? 0
    }
    items.push({ uuid: vm.uuid, name: vm.name_label, powerState: vm.power_state, tags: vm.tags, disks, diskBytes })
  }
  return items.sort((a, b) => a.name.localeCompare(b.name) || a.uuid.localeCompare(b.uuid))
}

/** The pool's SRs, by name. */
export function srInventoryOf(
  srs: ReadonlyMap<Ref<'SR'>, SrFields>,
  pool: Pick<PoolRecord, 'default_SR'> | undefined,
): SrInventoryItem[] {
  return [...srs]
    .map(([ref, sr]) => ({
      uuid: sr.uuid,
      name: sr.name_label,
      type: sr.type,
      contentType: sr.content_type,
      shared: sr.shared,
      size: sr.physical_size,
      free: Math.max(0, sr.physical_size - sr.physical_utilisation),
      default: pool !== undefined && pool.default_SR === ref,
    }))
    .sort((a, b) => a.name.localeCompare(b.name) || a.uuid.localeCompare(b.uuid))
}

/** The pool's networks, by name; the VLAN comes from the network's PIFs. */
export function networkInventoryOf(
  networks: ReadonlyMap<Ref<'network'>, NetworkFields>,
  pifs: ReadonlyMap<Ref<'PIF'>, Pick<PifRecord, 'VLAN'>>,
): NetworkInventoryItem[] {
  return [...networks.values()]
    .map(network => {
      // XAPI writes -1 on a PIF that is not a VLAN
      const vlan = network.PIFs.map(ref => pifs.get(ref)?.VLAN ?? -1).find(tag => tag >= 0)
      return {
        uuid: network.uuid,
        name: network.name_label,
        bridge: network.bridge,
        ...(vlan === undefined ? {} : { vlan }),
        mtu: network.MTU,
      }
    })
    .sort((a, b) => a.name.localeCompare(b.name) || a.uuid.localeCompare(b.uuid))
}

export async function readVmInventory(client: XapiClient, options: CallOptions = {}): Promise<VmInventoryItem[]> {
  const [vms, vbds, vdis] = await Promise.all([
    client.getAllRecords('VM', options),
    client.getAllRecords('VBD', options),
    client.getAllRecords('VDI', options),
  ])
  return vmInventoryOf(vms, vbds, vdis)
}

export async function readSrInventory(client: XapiClient, options: CallOptions = {}): Promise<SrInventoryItem[]> {
  const [srs, pools] = await Promise.all([client.getAllRecords('SR', options), client.getAllRecords('pool', options)])
  return srInventoryOf(srs, [...pools.values()][0])
}

export async function readNetworkInventory(
  client: XapiClient,
  options: CallOptions = {},
): Promise<NetworkInventoryItem[]> {
  const [networks, pifs] = await Promise.all([
    client.getAllRecords('network', options),
    client.getAllRecords('PIF', options),
  ])
  return networkInventoryOf(networks, pifs)
}
