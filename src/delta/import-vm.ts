/**
 * The import side: assemble a replica VM on the target SR from exported metadata — the VM
 * ("[Importing…]" name, start blocked while importing, HA off), one disk per exported disk
 * (`VDI.clone` of the base replica's disk, or `VDI.create`), VBDs and VIFs with network mapping.
 * Disk contents are streamed separately (`transfer-disk.ts`); `finaliseReplica` marks it done.
 * Every object is registered on the cleanup stack as it is created.
 */
import {
  KEYS,
  IMPORTING_BLOCKED_MESSAGE,
  BLOCKED_START_OPERATIONS,
  START_BLOCKED_MESSAGE,
  REPLICA_TAG,
  importingName,
  LIVE_VM_RESET_KEYS,
} from '../replication/metadata.js'
import type { XapiClient } from '../xapi/client.js'
import { cloneVdi, createVdi, destroyVdi, resizeVdi, setVdiNameLabel, setVdiOtherConfig } from '../xapi/vdi.js'
import { addTag, blockOperation, createVm, destroyVm, setVmNameLabel, setVmOtherConfig } from '../xapi/vm.js'
import { NULL_REF, type Ref, type StringMap } from '../xapi/types.js'
import { createVbd, destroyVbd } from '../xapi/vbd.js'
import { createVif, destroyVif } from '../xapi/vif.js'
import type { CleanupStack } from './cleanup.js'
import { mapNetwork, type TargetNetwork } from './network-map.js'
import type { DeltaDisk, DeltaVmMetadata } from './vm-metadata.js'

export interface ReplicaDiskSpec {
  readonly disk: DeltaDisk
  /** the base replica's disk on the target SR to clone; absent: a new empty disk */
  readonly cloneOf?: Ref<'VDI'>
  /** replication keys for this disk (placeholder datetime) */
  readonly otherConfig: StringMap
}

export interface CreateReplicaOptions {
  readonly target: XapiClient
  readonly metadata: DeltaVmMetadata
  readonly sr: Ref<'SR'>
  /** the final name; the VM is created as "[Importing…] name" */
  readonly name: string
  /** replication keys for the VM (placeholder datetime) */
  readonly otherConfig: StringMap
  readonly disks: readonly ReplicaDiskSpec[]
  /** source network uuid → target network uuid */
  readonly networkMap: Readonly<Record<string, string>>
  readonly cleanup: CleanupStack
  readonly signal?: AbortSignal
  readonly warn: (code: 'NETWORK_MAPPED_TO_DEFAULT' | 'VIF_WITHOUT_NETWORK', message: string) => void
}

export interface CreatedReplica {
  readonly vm: Ref<'VM'>
  /** target disks, in the order of `disks` */
  readonly vdis: readonly Ref<'VDI'>[]
}

/** Backup keys of the source record that must not leak onto the replica under other meanings. */
function cleanOtherConfig(source: StringMap, keys: StringMap): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(source)) {
    if (
      (LIVE_VM_RESET_KEYS as readonly string[]).includes(k) ||
      k === KEYS.sr ||
      k === KEYS.baseDelta ||
      k === KEYS.baseDeltaVdi
    )
      continue
    out[k] = v
  }
  return { ...out, ...keys }
}

/**
 * Creates the replica VM, its disks (clones or new), VBDs and VIFs on the target SR, each
 * registered on `o.cleanup` as it is created. The VM is named "[Importing…] …", its start is
 * blocked with "Importing…" and HA is off until {@link finaliseReplica}.
 */
export async function createReplicaVm(o: CreateReplicaOptions): Promise<CreatedReplica> {
  const { target, metadata, cleanup } = o
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  const src = metadata.vm
  const vm = await createVm(
    target,
    {
      name_label: importingName(o.name),
      name_description: src.name_description,
      user_version: src.user_version,
      is_a_template: false,
      affinity: NULL_REF,
      memory_static_max: src.memory_static_max,
      memory_dynamic_max: src.memory_dynamic_max,
      memory_dynamic_min: src.memory_dynamic_min,
      memory_static_min: src.memory_static_min,
      VCPUs_params: src.VCPUs_params,
      VCPUs_max: src.VCPUs_max,
      VCPUs_at_startup: src.VCPUs_at_startup,
      actions_after_shutdown: src.actions_after_shutdown,
      actions_after_reboot: src.actions_after_reboot,
      actions_after_crash: src.actions_after_crash,
      PV_bootloader: src.PV_bootloader,
      PV_kernel: src.PV_kernel,
      PV_ramdisk: src.PV_ramdisk,
      PV_args: src.PV_args,
      PV_bootloader_args: src.PV_bootloader_args,
      PV_legacy_args: src.PV_legacy_args,
      HVM_boot_policy: src.HVM_boot_policy,
      HVM_boot_params: src.HVM_boot_params,
      HVM_shadow_multiplier: src.HVM_shadow_multiplier,
      platform: src.platform,
      PCI_bus: src.PCI_bus,
      other_config: cleanOtherConfig(src.other_config, o.otherConfig),
      recommendations: src.recommendations,
      xenstore_data: src.xenstore_data,
      // HA must never boot a replica (XO #2359, #3780, #4527).
      ha_always_run: false,
      ha_restart_priority: '',
      tags: src.tags.filter(t => t !== REPLICA_TAG),
      has_vendor_device: src.has_vendor_device,
      hardware_platform_version: src.hardware_platform_version,
      domain_type: src.domain_type,
      NVRAM: src.NVRAM,
      start_delay: src.start_delay,
      shutdown_delay: src.shutdown_delay,
      order: src.order,
    },
    opts,
  )
  cleanup.defer(`replica VM ${vm}`, () => destroyVm(target, vm))
  // VM.create ignores blocked_operations: block start right away, before any disk exists.
  for (const op of BLOCKED_START_OPERATIONS) await blockOperation(target, vm, op, IMPORTING_BLOCKED_MESSAGE, opts)

  const vdis: Ref<'VDI'>[] = []
  for (const spec of o.disks) {
    const source = spec.disk.vdi
    let vdi: Ref<'VDI'>
    if (spec.cloneOf !== undefined) {
      vdi = await cloneVdi(target, spec.cloneOf, opts)
      cleanup.defer(`replica disk ${vdi}`, () => destroyVdi(target, vdi))
      // The clone carries the previous replica's keys; each is replaced, none is left stale.
      await setVdiOtherConfig(target, vdi, spec.otherConfig, opts)
      const current = await target.getRecord('VDI', vdi, opts)
      if (current.virtual_size < source.virtual_size) await resizeVdi(target, vdi, source.virtual_size, opts)
      // the clone keeps the previous replica's disk name; the source disk may have been renamed since
      if (current.name_label !== source.name_label) await setVdiNameLabel(target, vdi, source.name_label, opts)
    } else {
      vdi = await createVdi(
        target,
        {
          SR: o.sr,
          virtual_size: source.virtual_size,
          name_label: source.name_label,
          name_description: source.name_description,
          type: source.type,
          sharable: source.sharable,
          read_only: false,
          other_config: cleanOtherConfig(source.other_config, spec.otherConfig),
          xenstore_data: source.xenstore_data,
          // sm_config is storage-private: never copied (XO does the same).
          sm_config: {},
          tags: source.tags,
        },
        opts,
      )
      cleanup.defer(`replica disk ${vdi}`, () => destroyVdi(target, vdi))
    }
    const vbd = spec.disk.vbd
    const vbdRef = await createVbd(
      target,
      {
        VM: vm,
        VDI: vdi,
        userdevice: vbd.userdevice,
        bootable: vbd.bootable,
        mode: vbd.mode,
        type: vbd.type,
        unpluggable: vbd.unpluggable,
        other_config: vbd.other_config,
        qos_algorithm_type: vbd.qos_algorithm_type,
        qos_algorithm_params: vbd.qos_algorithm_params,
      },
      opts,
    )
    cleanup.defer(`replica VBD ${vbdRef}`, () => destroyVbd(target, vbdRef))
    vdis.push(vdi)
  }

  if (metadata.vifs.length > 0) {
    const networks = await targetNetworks(target, opts)
    for (const { vif, network } of metadata.vifs) {
      const mapped = mapNetwork(network, networks, o.networkMap)
      if (mapped === undefined) {
        o.warn(
          'VIF_WITHOUT_NETWORK',
          `no network on the target for VIF ${vif.device} (network ${network.name}); the replica has no VIF ${vif.device}`,
        )
        continue
      }
      if (mapped.match === 'default') {
        o.warn(
          'NETWORK_MAPPED_TO_DEFAULT',
          `network ${network.name} (${network.uuid}) has no match on the target; VIF ${vif.device} goes on ${mapped.network.name}; add a network map to choose`,
        )
      }
      const vifRef = await createVif(
        target,
        {
          VM: vm,
          network: mapped.network.ref as Ref<'network'>,
          device: vif.device,
          // MACs are kept, as XO does: a failed-over replica keeps its DHCP leases and licences.
          MAC: vif.MAC,
          MTU: vif.MTU,
          other_config: vif.other_config,
          qos_algorithm_type: vif.qos_algorithm_type,
          qos_algorithm_params: vif.qos_algorithm_params,
          locking_mode: vif.locking_mode,
          ipv4_allowed: vif.ipv4_allowed,
          ipv6_allowed: vif.ipv6_allowed,
        },
        opts,
      )
      cleanup.defer(`replica VIF ${vifRef}`, () => destroyVif(target, vifRef))
    }
  }
  return { vm, vdis }
}

async function targetNetworks(target: XapiClient, opts: { signal?: AbortSignal }): Promise<TargetNetwork[]> {
  const [networks, pifs] = await Promise.all([target.getAllRecords('network', opts), target.getAllRecords('PIF', opts)])
  const out: TargetNetwork[] = []
  for (const [ref, network] of networks) {
    const own = network.PIFs.map(p => pifs.get(p)).filter(p => p !== undefined)
    out.push({
      ref,
      uuid: network.uuid,
      name: network.name_label,
      vlan: own[0]?.VLAN,
      management: own.some(p => p.management),
    })
  }
  return out
}

export interface FinaliseOptions {
  readonly target: XapiClient
  readonly vm: Ref<'VM'>
  readonly name: string
  readonly vdis: readonly { readonly ref: Ref<'VDI'>; readonly name: string }[]
  /** the real `xo:backup:datetime`, written last: it is what marks the replica complete */
  readonly datetime: string
  readonly signal?: AbortSignal
}

/**
 * Protects the replica (start/start_on blocked with XO's clone message, tag) and writes the
 * real datetime on its disks, then on the VM — the VM's key last, since readers treat the
 * VM's datetime as "complete".
 */
export async function finaliseReplica(o: FinaliseOptions): Promise<void> {
  const { target, vm } = o
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  await setVmNameLabel(target, vm, o.name, opts)
  for (const op of BLOCKED_START_OPERATIONS) await blockOperation(target, vm, op, START_BLOCKED_MESSAGE, opts)
  const record = await target.getRecord('VM', vm, opts)
  if (!record.tags.includes(REPLICA_TAG)) await addTag(target, vm, REPLICA_TAG, opts)
  for (const vdi of o.vdis) await setVdiOtherConfig(target, vdi.ref, { [KEYS.datetime]: o.datetime }, opts)
  await setVmOtherConfig(target, vm, { [KEYS.datetime]: o.datetime }, opts)
}
