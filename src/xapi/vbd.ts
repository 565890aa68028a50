/** VBDs: attach disks to VMs, and list a VM's disks. */
import type { CallOptions, XapiClient } from './client.js'
import { isNullRef, type Ref, type StringMap, type VbdRecord, type VdiRecord } from './types.js'

export interface VbdCreateParams {
  readonly VM: Ref<'VM'>
  /** `OpaqueRef:NULL` for an empty CD drive */
  readonly VDI: Ref<'VDI'>
  /** `"0"`, `"1"`, …; `"3"` is conventionally the CD */
  readonly userdevice: string
  readonly bootable?: boolean
  readonly mode?: 'RO' | 'RW'
  readonly type?: 'CD' | 'Disk' | 'Floppy'
  readonly empty?: boolean
  readonly unpluggable?: boolean
  readonly other_config?: StringMap
  readonly qos_algorithm_type?: string
  readonly qos_algorithm_params?: StringMap
}

/** `VBD.create`; `DEVICE_ALREADY_EXISTS` when the slot is taken. */
export function createVbd(client: XapiClient, params: VbdCreateParams, options: CallOptions = {}): Promise<Ref<'VBD'>> {
  const record = {
    VM: params.VM,
    VDI: params.VDI,
    userdevice: params.userdevice,
    bootable: params.bootable ?? false,
    mode: params.mode ?? 'RW',
    type: params.type ?? 'Disk',
    empty: params.empty ?? false,
    unpluggable: params.unpluggable ?? true,
    other_config: params.other_config ?? {},
    qos_algorithm_type: params.qos_algorithm_type ?? '',
    qos_algorithm_params: params.qos_algorithm_params ?? {},
  }
  return client.call<Ref<'VBD'>>('VBD.create', [record], options)
}

/** `VBD.destroy`: detaches the disk record from the VM; the VDI stays. */
export async function destroyVbd(client: XapiClient, vbd: Ref<'VBD'>, options: CallOptions = {}): Promise<void> {
  await client.call('VBD.destroy', [vbd], options)
}

/** A VM's disk: its VBD and VDI with their records. */
export interface VmDisk {
  readonly vbdRef: Ref<'VBD'>
  readonly vbd: VbdRecord
  readonly vdiRef: Ref<'VDI'>
  readonly vdi: VdiRecord
}

/**
 * The VM's disks (VBDs of type `Disk` with a VDI), ordered by `userdevice` numerically. The
 * type comparison is case-sensitive, as XAPI spells it.
 */
export async function listVmDisks(
  client: XapiClient,
  vbdRefs: readonly Ref<'VBD'>[],
  options: CallOptions = {},
): Promise<VmDisk[]> {
  const disks: VmDisk[] = []
  for (const vbdRef of vbdRefs) {
    const vbd = await client.getRecord('VBD', vbdRef, options)
    if (vbd.type !== 'Disk' || isNullRef(vbd.VDI)) continue
    disks.push({ vbdRef, vbd, vdiRef: vbd.VDI, vdi: await client.getRecord('VDI', vbd.VDI, options) })
  }
  return disks.sort((a, b) => Number(a.vbd.userdevice) - Number(b.vbd.userdevice))
}
