/**
 * The import side: assemble a replica VM on the target SR from exported metadata — the VM
 * (importing name, replication keys and tags in its `VM.create` record, start blocked while
 * importing, HA off), one disk per exported disk
 * (`VDI.clone` of the base replica's disk, or `VDI.create`), VBDs and VIFs with network mapping.
 * Disk contents are streamed separately (`transfer-disk.ts`); `finaliseReplica` marks it done.
 * Names, reasons, tag and dropped keys come from the caller's {@link ReplicaPolicy}.
 * Every object is registered on the cleanup stack as it is created.
 */
import type { CallOptions, XapiClient } from '../xapi/client.js'
import { createVm, destroyVm, setVmBlockedOperations } from '../xapi/vm.js'
import { NULL_REF, type Ref, type StringMap } from '../xapi/types.js'
import type { CleanupStack } from './cleanup.js'
import { createReplicaDisks, type ReplicaDiskSpec } from './replica-disks.js'
import { blockedMap, replicaOtherConfig, type ReplicaPolicy } from './replica-policy.js'
import { createReplicaVifs, type ReplicaVifWarning } from './replica-vifs.js'
import type { PassNetworks } from './pass-networks.js'
import type { DeltaVmMetadata } from './vm-metadata.js'

export type { ReplicaDiskSpec } from './replica-disks.js'

/** The source's tags without the policy's tag, which the policy adds at creation when it says so. */
function replicaTags(policy: ReplicaPolicy, tags: readonly string[]): string[] {
  const own = tags.filter(t => t !== policy.tag)
  return policy.tagOnCreate === true ? [...own, policy.tag] : own
}

export interface CreateReplicaOptions {
  readonly target: XapiClient
  readonly metadata: DeltaVmMetadata
  readonly sr: Ref<'SR'>
  /** the final name; the VM is created under `policy.importingName(name)` */
  readonly name: string
  /** replication keys for the VM (placeholder datetime) */
  readonly otherConfig: StringMap
  readonly disks: readonly ReplicaDiskSpec[]
  readonly policy: ReplicaPolicy
  /** source network uuid → target network uuid */
  readonly networkMap: Readonly<Record<string, string>>
  readonly cleanup: CleanupStack
  readonly signal?: AbortSignal
  readonly warn: (code: ReplicaVifWarning, message: string) => void
  /** the pass's networks, read once per pass */
  readonly networks?: PassNetworks
}

export interface CreatedReplica {
  readonly vm: Ref<'VM'>
  /** target disks, in the order of `disks` */
  readonly vdis: readonly Ref<'VDI'>[]
  /** the `other_config` written on each of them, in the same order (what `finaliseReplica` completes) */
  readonly vdiOtherConfigs: readonly StringMap[]
}

/**
 * Creates the replica VM, its disks (clones or new), VBDs and VIFs on the target SR, each
 * registered on `o.cleanup` as it is created. The VM carries its importing name, its start is
 * blocked with the importing reason and HA is off until {@link finaliseReplica}.
 */
export async function createReplicaVm(o: CreateReplicaOptions): Promise<CreatedReplica> {
  const { target, cleanup, policy } = o
  const opts: CallOptions = o.signal === undefined ? {} : { signal: o.signal }
  // The record carries the replication keys and tags: the VM is this job's from the moment it exists.
  const vm = await createVm(target, replicaVmRecord(o), opts)
  cleanup.defer(`replica VM ${vm}`, () => destroyVm(target, vm))
  // VM.create forces blocked_operations to {}: block start right away, before any disk exists,
  // in one call (the whole map: nothing else has written it).
  await setVmBlockedOperations(target, vm, blockedMap(policy, policy.importingReason), opts)
  const disks = await createReplicaDisks({ target, sr: o.sr, vm, disks: o.disks, policy, cleanup }, opts)
  const vifs = {
    target,
    vm,
    vifs: o.metadata.vifs,
    networkMap: o.networkMap,
    cleanup,
    warn: o.warn,
    ...(o.networks === undefined ? {} : { networks: o.networks }),
  }
  await createReplicaVifs(vifs, opts)
  return { vm, vdis: disks.map(d => d.ref), vdiOtherConfigs: disks.map(d => d.otherConfig) }
}

/** The `VM.create` record: the source snapshot's settings under the replica's name, keys and protection. */
function replicaVmRecord(o: CreateReplicaOptions): Record<string, unknown> {
  const src = o.metadata.vm
  const settings = o.metadata.source ?? src
  return {
    name_label: o.policy.importingName(o.name),
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
    other_config: replicaOtherConfig(o.policy, src.other_config, {
      ...o.policy.settingKeys?.(settings),
      ...o.otherConfig,
    }),
    recommendations: src.recommendations,
    xenstore_data: src.xenstore_data,
    // HA must never boot a replica (XO #2359, #3780, #4527).
    ha_always_run: false,
    ha_restart_priority: '',
    tags: replicaTags(o.policy, src.tags),
    has_vendor_device: src.has_vendor_device,
    hardware_platform_version: src.hardware_platform_version,
    domain_type: src.domain_type,
    NVRAM: src.NVRAM,
    start_delay: settings.start_delay,
    shutdown_delay: settings.shutdown_delay,
    order: settings.order,
  }
}
