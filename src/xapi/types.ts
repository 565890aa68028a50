/**
 * Typed view of the XAPI data model: branded refs and uuids, and read-only records of the fields
 * xen-cr reads (reference §3). Field names are XAPI's own, so the reference reads as documentation.
 *
 * Records are normalised by the client whatever the transport: ints are numbers (XML-RPC sends
 * them as bare strings) and datetimes are XAPI strings `YYYYMMDDTHH:MM:SSZ` (the XML-RPC parser
 * turns them into `Date`s, JSON-RPC does not).
 */

/** The XAPI classes the library knows records for; spelled as on the wire. */
export type XapiClassName = 'VM' | 'VDI' | 'VBD' | 'VIF' | 'network' | 'PIF' | 'SR' | 'PBD' | 'host' | 'pool' | 'task'

declare const refBrand: unique symbol
declare const uuidBrand: unique symbol

/** An opaque reference (`OpaqueRef:…`) to an object of class `C`. */
export type Ref<C extends string> = string & { readonly [refBrand]: C }

/** The uuid of an object of class `C` (lowercase 8-4-4-4-12). */
export type Uuid<C extends string> = string & { readonly [uuidBrand]: C }

/** What every unset ref field contains. */
export const NULL_REF = 'OpaqueRef:NULL' as Ref<never>

/** True for `OpaqueRef:NULL` and for anything that is not a ref at all (`''`, undefined). */
export function isNullRef(ref: string | undefined | null): boolean {
  return ref === undefined || ref === null || ref === NULL_REF || !ref.startsWith('OpaqueRef:')
}

/** Brands a string received from XAPI as a ref of class `C` (no check beyond the prefix). */
export function asRef<C extends string>(value: string): Ref<C> {
  return value as Ref<C>
}

/** Brands a string as a uuid of class `C`. */
export function asUuid<C extends string>(value: string): Uuid<C> {
  return value as Uuid<C>
}

/** An XAPI datetime as XAPI prints it: `20241103T10:20:30Z`; `19700101T00:00:00Z` means never. */
export type XapiDateTime = string

export type StringMap = Readonly<Record<string, string>>

export type VmPowerState = 'Halted' | 'Paused' | 'Running' | 'Suspended'
export type TaskStatus = 'pending' | 'success' | 'failure' | 'cancelling' | 'cancelled'

export interface VmRecord {
  readonly uuid: Uuid<'VM'>
  readonly name_label: string
  readonly name_description: string
  readonly power_state: VmPowerState
  readonly is_a_template: boolean
  readonly is_default_template: boolean
  readonly is_control_domain: boolean
  readonly is_a_snapshot: boolean
  readonly snapshot_of: Ref<'VM'>
  readonly snapshots: readonly Ref<'VM'>[]
  readonly snapshot_time: XapiDateTime
  readonly snapshot_info: StringMap
  readonly parent: Ref<'VM'>
  readonly children: readonly Ref<'VM'>[]
  readonly resident_on: Ref<'host'>
  readonly affinity: Ref<'host'>
  readonly allowed_operations: readonly string[]
  readonly current_operations: StringMap
  readonly blocked_operations: StringMap
  readonly other_config: StringMap
  readonly tags: readonly string[]
  readonly user_version: number
  readonly memory_overhead: number
  readonly memory_static_max: number
  readonly memory_dynamic_max: number
  readonly memory_dynamic_min: number
  readonly memory_static_min: number
  readonly VCPUs_params: StringMap
  readonly VCPUs_max: number
  readonly VCPUs_at_startup: number
  readonly actions_after_shutdown: string
  readonly actions_after_reboot: string
  readonly actions_after_crash: string
  readonly VBDs: readonly Ref<'VBD'>[]
  readonly VIFs: readonly Ref<'VIF'>[]
  readonly PV_bootloader: string
  readonly PV_kernel: string
  readonly PV_ramdisk: string
  readonly PV_args: string
  readonly PV_bootloader_args: string
  readonly PV_legacy_args: string
  readonly HVM_boot_policy: string
  readonly HVM_boot_params: StringMap
  readonly HVM_shadow_multiplier: number
  readonly platform: StringMap
  readonly PCI_bus: string
  readonly domid: number
  readonly xenstore_data: StringMap
  /** `OpaqueRef:NULL` until the guest tools report */
  readonly guest_metrics: Ref<'VM_guest_metrics'>
  readonly recommendations: string
  readonly ha_always_run: boolean
  readonly ha_restart_priority: string
  readonly bios_strings: StringMap
  readonly has_vendor_device: boolean
  readonly hardware_platform_version: number
  readonly generation_id: string
  readonly domain_type: string
  readonly NVRAM: StringMap
  readonly suspend_SR: Ref<'SR'>
  readonly suspend_VDI: Ref<'VDI'>
  readonly start_delay: number
  readonly shutdown_delay: number
  readonly order: number
  readonly version: number
  readonly reference_label: string
}

export interface VdiRecord {
  readonly uuid: Uuid<'VDI'>
  readonly name_label: string
  readonly name_description: string
  readonly allowed_operations: readonly string[]
  readonly current_operations: StringMap
  readonly SR: Ref<'SR'>
  readonly VBDs: readonly Ref<'VBD'>[]
  readonly virtual_size: number
  readonly physical_utilisation: number
  readonly type: string
  readonly sharable: boolean
  readonly read_only: boolean
  readonly other_config: StringMap
  readonly storage_lock: boolean
  readonly location: string
  readonly managed: boolean
  readonly missing: boolean
  readonly parent: Ref<'VDI'>
  readonly xenstore_data: StringMap
  readonly sm_config: StringMap
  readonly is_a_snapshot: boolean
  readonly snapshot_of: Ref<'VDI'>
  readonly snapshots: readonly Ref<'VDI'>[]
  readonly snapshot_time: XapiDateTime
  readonly tags: readonly string[]
  readonly on_boot: string
  readonly cbt_enabled: boolean
}

export interface VbdRecord {
  readonly uuid: Uuid<'VBD'>
  readonly allowed_operations: readonly string[]
  readonly current_operations: StringMap
  readonly VM: Ref<'VM'>
  readonly VDI: Ref<'VDI'>
  readonly device: string
  readonly userdevice: string
  readonly bootable: boolean
  readonly mode: 'RO' | 'RW'
  readonly type: 'CD' | 'Disk' | 'Floppy'
  readonly unpluggable: boolean
  readonly storage_lock: boolean
  readonly empty: boolean
  readonly other_config: StringMap
  readonly currently_attached: boolean
  readonly status_code: number
  readonly status_detail: string
  readonly runtime_properties: StringMap
  readonly qos_algorithm_type: string
  readonly qos_algorithm_params: StringMap
}

export interface VifRecord {
  readonly uuid: Uuid<'VIF'>
  readonly allowed_operations: readonly string[]
  readonly current_operations: StringMap
  readonly device: string
  readonly network: Ref<'network'>
  readonly VM: Ref<'VM'>
  readonly MAC: string
  readonly MTU: number
  readonly other_config: StringMap
  readonly currently_attached: boolean
  readonly status_code: number
  readonly status_detail: string
  readonly runtime_properties: StringMap
  readonly qos_algorithm_type: string
  readonly qos_algorithm_params: StringMap
  readonly MAC_autogenerated: boolean
  readonly locking_mode: string
  readonly ipv4_allowed: readonly string[]
  readonly ipv6_allowed: readonly string[]
}

export interface NetworkRecord {
  readonly uuid: Uuid<'network'>
  readonly name_label: string
  readonly name_description: string
  readonly allowed_operations: readonly string[]
  readonly current_operations: StringMap
  readonly VIFs: readonly Ref<'VIF'>[]
  readonly PIFs: readonly Ref<'PIF'>[]
  readonly MTU: number
  readonly other_config: StringMap
  readonly bridge: string
  readonly managed: boolean
  readonly tags: readonly string[]
  readonly default_locking_mode: string
}

export interface PifRecord {
  readonly uuid: Uuid<'PIF'>
  readonly device: string
  readonly network: Ref<'network'>
  readonly host: Ref<'host'>
  readonly MAC: string
  readonly MTU: number
  readonly VLAN: number
  readonly physical: boolean
  readonly currently_attached: boolean
  readonly ip_configuration_mode: string
  readonly IP: string
  readonly netmask: string
  readonly gateway: string
  readonly management: boolean
  readonly other_config: StringMap
}

export interface SrRecord {
  readonly uuid: Uuid<'SR'>
  readonly name_label: string
  readonly name_description: string
  readonly allowed_operations: readonly string[]
  readonly current_operations: StringMap
  readonly VDIs: readonly Ref<'VDI'>[]
  readonly PBDs: readonly Ref<'PBD'>[]
  readonly virtual_allocation: number
  readonly physical_utilisation: number
  readonly physical_size: number
  readonly type: string
  readonly content_type: string
  readonly shared: boolean
  readonly other_config: StringMap
  readonly tags: readonly string[]
  readonly sm_config: StringMap
}

export interface PbdRecord {
  readonly uuid: Uuid<'PBD'>
  readonly host: Ref<'host'>
  readonly SR: Ref<'SR'>
  readonly device_config: StringMap
  readonly currently_attached: boolean
  readonly other_config: StringMap
}

export interface HostRecord {
  readonly uuid: Uuid<'host'>
  readonly name_label: string
  readonly name_description: string
  readonly address: string
  readonly hostname: string
  readonly enabled: boolean
  readonly API_version_major: number
  readonly API_version_minor: number
  readonly software_version: StringMap
  readonly PBDs: readonly Ref<'PBD'>[]
  readonly PIFs: readonly Ref<'PIF'>[]
  readonly resident_VMs: readonly Ref<'VM'>[]
  readonly control_domain: Ref<'VM'>
  readonly other_config: StringMap
}

export interface PoolRecord {
  readonly uuid: Uuid<'pool'>
  readonly name_label: string
  readonly name_description: string
  readonly master: Ref<'host'>
  readonly default_SR: Ref<'SR'>
  readonly suspend_image_SR: Ref<'SR'>
  readonly crash_dump_SR: Ref<'SR'>
  readonly other_config: StringMap
  readonly tags: readonly string[]
}

export interface TaskRecord {
  readonly uuid: Uuid<'task'>
  readonly name_label: string
  readonly name_description: string
  readonly allowed_operations: readonly string[]
  readonly current_operations: StringMap
  readonly created: XapiDateTime
  readonly finished: XapiDateTime
  readonly status: TaskStatus
  readonly resident_on: Ref<'host'>
  /** 0.0 – 1.0 */
  readonly progress: number
  readonly type: string
  /** the XML-RPC encoding of the result value, e.g. `<value>OpaqueRef:…</value>`, or `""` */
  readonly result: string
  /** `[code, ...params]` when the task failed */
  readonly error_info: readonly string[]
  readonly other_config: StringMap
  readonly subtask_of: Ref<'task'>
  readonly subtasks: readonly Ref<'task'>[]
}

interface RecordByClass {
  VM: VmRecord
  VDI: VdiRecord
  VBD: VbdRecord
  VIF: VifRecord
  network: NetworkRecord
  PIF: PifRecord
  SR: SrRecord
  PBD: PbdRecord
  host: HostRecord
  pool: PoolRecord
  task: TaskRecord
}

/** The record interface of class `C`. */
export type RecordOf<C extends XapiClassName> = RecordByClass[C]

/**
 * Fields typed `int` in the datamodel. XML-RPC carries ints as bare strings, so the client
 * converts these to numbers; JSON-RPC already sends numbers.
 */
export const INT_FIELDS: { readonly [C in XapiClassName]: readonly (keyof RecordOf<C>)[] } = {
  VM: [
    'user_version',
    'memory_overhead',
    'memory_static_max',
    'memory_dynamic_max',
    'memory_dynamic_min',
    'memory_static_min',
    'VCPUs_max',
    'VCPUs_at_startup',
    'domid',
    'hardware_platform_version',
    'start_delay',
    'shutdown_delay',
    'order',
    'version',
  ],
  VDI: ['virtual_size', 'physical_utilisation'],
  VBD: ['status_code'],
  VIF: ['MTU', 'status_code'],
  network: ['MTU'],
  PIF: ['MTU', 'VLAN'],
  SR: ['virtual_allocation', 'physical_utilisation', 'physical_size'],
  PBD: [],
  host: ['API_version_major', 'API_version_minor'],
  pool: [],
  task: [],
}
