/**
 * The lab's data model: every class, every field of reference §3 with its wire type and whether
 * a generic setter exists. Field lists are written compactly as `name:type` tokens:
 * `s` string (also enums), `i` int, `f` float, `b` bool, `d` datetime, `r:C` ref to class C,
 * `ss` string set, `si` int set, `sr:C` stored ref set, `m` string map, `rel:C.f` a set computed
 * from field `f` of class `C` (reference §3.6). A leading `+` marks a RW field (generic
 * `set_`, plus `add_to_`/`remove_from_` for maps and `add_`/`remove_` for sets).
 */

export type FieldType =
  | { kind: 's' | 'i' | 'f' | 'b' | 'd' | 'ss' | 'si' | 'm' }
  | { kind: 'r' | 'sr'; target: string }
  | { kind: 'rel'; from: string; via: string }

export interface FieldSpec {
  readonly name: string
  readonly type: FieldType
  readonly rw: boolean
}

export interface ClassSpec {
  readonly name: string
  readonly fields: readonly FieldSpec[]
  readonly byName: ReadonlyMap<string, FieldSpec>
  /** whether `get_all_records`/`get_all` are exposed (not for session) */
  readonly listable: boolean
  /** false for a class XAPI keeps outside its database (message): no generated messages at all */
  readonly generated: boolean
  readonly defaults: Readonly<Record<string, StoredValue>>
}

/** A field value as the lab stores it (JSON-friendly; datetimes as XAPI strings, floats as numbers). */
export type StoredValue =
  string | number | boolean | readonly string[] | readonly number[] | Readonly<Record<string, string>>

export type LabRecord = Record<string, StoredValue>

interface ClassSource {
  fields: string
  listable?: boolean
  generated?: boolean
  defaults?: Record<string, StoredValue>
}

const SOURCES: Record<string, ClassSource> = {
  pool: {
    fields: `uuid:s +name_label:s +name_description:s master:r:host +default_SR:r:SR +suspend_image_SR:r:SR +crash_dump_SR:r:SR
      +other_config:m ha_enabled:b ha_configuration:m ha_statefiles:ss ha_host_failures_to_tolerate:i ha_plan_exists_for:i
      +ha_allow_overcommit:b ha_overcommitted:b blobs:m +tags:ss +gui_config:m +health_check_config:m wlb_url:s wlb_username:s
      +wlb_enabled:b +wlb_verify_cert:b redo_log_enabled:b redo_log_vdi:r:VDI vswitch_controller:s restrictions:m
      metadata_VDIs:sr:VDI ha_cluster_stack:s allowed_operations:ss current_operations:m guest_agent_config:m cpu_info:m
      +policy_no_vendor_device:b +live_patching_disabled:b igmp_snooping_enabled:b uefi_certificates:s is_psr_pending:b
      tls_verification_enabled:b repositories:sr:Repository client_certificate_auth_enabled:b client_certificate_auth_name:s
      repository_proxy_url:s repository_proxy_username:s repository_proxy_password:r:secret +migration_compression:b
      +coordinator_bias:b telemetry_uuid:r:secret telemetry_frequency:s telemetry_next_collection:d last_update_sync:d
      update_sync_frequency:s update_sync_day:i update_sync_enabled:b`,
    defaults: {
      ha_cluster_stack: 'xhad',
      telemetry_frequency: 'weekly',
      update_sync_frequency: 'weekly',
      coordinator_bias: true,
      wlb_verify_cert: false,
    },
  },
  host: {
    fields: `uuid:s +name_label:s +name_description:s memory_overhead:i allowed_operations:ss current_operations:m
      API_version_major:i API_version_minor:i API_version_vendor:s API_version_vendor_implementation:m enabled:b
      software_version:m +other_config:m capabilities:ss cpu_configuration:m sched_policy:s supported_bootloaders:ss
      resident_VMs:rel:VM.resident_on +logging:m PIFs:rel:PIF.host +suspend_image_sr:r:SR +crash_dump_sr:r:SR crashdumps:ss
      patches:ss updates:ss PBDs:rel:PBD.host host_CPUs:ss cpu_info:m +hostname:s +address:s metrics:r:host_metrics
      license_params:m ha_statefiles:ss ha_network_peers:ss blobs:m +tags:ss external_auth_type:s external_auth_service_name:s
      external_auth_configuration:m edition:s +license_server:m bios_strings:m power_on_mode:s power_on_config:m
      local_cache_sr:r:SR chipset_info:m PCIs:ss PGPUs:ss PUSBs:ss ssl_legacy:b +guest_VCPUs_params:m +display:s
      virtual_hardware_platform_versions:si control_domain:r:VM updates_requiring_reboot:ss features:ss iscsi_iqn:s
      multipathing:b uefi_certificates:s certificates:ss editions:ss pending_guidances:ss tls_verification_enabled:b
      last_software_update:d https_only:b latest_synced_updates_applied:s numa_affinity_policy:s
      pending_guidances_recommended:ss pending_guidances_full:ss last_update_hash:s`,
    defaults: {
      API_version_major: 2,
      API_version_minor: 21,
      API_version_vendor: 'XenSource',
      enabled: true,
      sched_policy: 'credit',
      supported_bootloaders: ['pygrub', 'eliloader'],
      edition: 'xcp-ng',
      display: 'enabled',
      virtual_hardware_platform_versions: [0, 1, 2],
      latest_synced_updates_applied: 'unknown',
      numa_affinity_policy: 'default_policy',
      memory_overhead: 0,
    },
  },
  SR: {
    fields: `uuid:s name_label:s name_description:s allowed_operations:ss current_operations:m VDIs:rel:VDI.SR PBDs:rel:PBD.SR
      virtual_allocation:i physical_utilisation:i physical_size:i type:s content_type:s shared:b +other_config:m +tags:ss
      +sm_config:m blobs:m local_cache_enabled:b introduced_by:r:DR_task clustered:b is_tools_sr:b`,
    defaults: { type: 'ext', content_type: 'user' },
  },
  PBD: {
    fields: 'uuid:s host:r:host SR:r:SR device_config:m currently_attached:b +other_config:m',
  },
  network: {
    fields: `uuid:s +name_label:s +name_description:s allowed_operations:ss current_operations:m VIFs:rel:VIF.network
      PIFs:rel:PIF.network +MTU:i +other_config:m bridge:s managed:b blobs:m +tags:ss default_locking_mode:s assigned_ips:m purpose:ss`,
    defaults: { MTU: 1500, managed: true, default_locking_mode: 'unlocked' },
  },
  PIF: {
    fields: `uuid:s device:s network:r:network host:r:host MAC:s MTU:i VLAN:i metrics:r:PIF_metrics physical:b
      currently_attached:b ip_configuration_mode:s IP:s netmask:s gateway:s DNS:s bond_slave_of:r:Bond bond_master_of:ss
      VLAN_master_of:r:VLAN VLAN_slave_of:ss management:b +other_config:m +disallow_unplug:b tunnel_access_PIF_of:ss
      tunnel_transport_PIF_of:ss ipv6_configuration_mode:s IPv6:ss ipv6_gateway:s primary_address_type:s managed:b
      properties:m capabilities:ss igmp_snooping_status:s sriov_physical_PIF_of:ss sriov_logical_PIF_of:ss PCI:r:PCI`,
    defaults: {
      MTU: 1500,
      VLAN: -1,
      ip_configuration_mode: 'None',
      ipv6_configuration_mode: 'None',
      primary_address_type: 'IPv4',
      managed: true,
      igmp_snooping_status: 'disabled',
    },
  },
  VM: {
    fields: `uuid:s allowed_operations:ss current_operations:m +name_label:s +name_description:s power_state:s +user_version:i
      +is_a_template:b is_default_template:b suspend_VDI:r:VDI resident_on:r:host scheduled_to_be_resident_on:r:host
      +affinity:r:host memory_overhead:i memory_target:i memory_static_max:i memory_dynamic_max:i memory_dynamic_min:i
      memory_static_min:i +VCPUs_params:m VCPUs_max:i VCPUs_at_startup:i +actions_after_softreboot:s +actions_after_shutdown:s
      +actions_after_reboot:s actions_after_crash:s consoles:ss VIFs:rel:VIF.VM VBDs:rel:VBD.VM VUSBs:ss crash_dumps:ss VTPMs:ss
      +PV_bootloader:s +PV_kernel:s +PV_ramdisk:s +PV_args:s +PV_bootloader_args:s +PV_legacy_args:s HVM_boot_policy:s
      +HVM_boot_params:m HVM_shadow_multiplier:f +platform:m +PCI_bus:s +other_config:m domid:i domarch:s last_boot_CPU_flags:m
      is_control_domain:b metrics:r:VM_metrics guest_metrics:r:VM_guest_metrics last_booted_record:s +recommendations:s
      +xenstore_data:m ha_always_run:b ha_restart_priority:s is_a_snapshot:b snapshot_of:r:VM snapshots:rel:VM.snapshot_of
      snapshot_time:d transportable_snapshot_id:s blobs:m +tags:ss +blocked_operations:m snapshot_info:m snapshot_metadata:s
      parent:r:VM children:rel:VM.parent bios_strings:m protection_policy:r:VMPP is_snapshot_from_vmpp:b
      snapshot_schedule:r:VMSS is_vmss_snapshot:b appliance:r:VM_appliance start_delay:i shutdown_delay:i order:i VGPUs:ss
      attached_PCIs:ss +suspend_SR:r:SR version:i generation_id:s +hardware_platform_version:i has_vendor_device:b
      requires_reboot:b reference_label:s domain_type:s +NVRAM:m pending_guidances:ss pending_guidances_recommended:ss
      pending_guidances_full:ss`,
    defaults: {
      power_state: 'Halted',
      domid: -1,
      domarch: '',
      HVM_shadow_multiplier: 1,
      actions_after_softreboot: 'soft_reboot',
      actions_after_shutdown: 'destroy',
      actions_after_reboot: 'restart',
      actions_after_crash: 'restart',
      domain_type: 'hvm',
      HVM_boot_policy: 'BIOS order',
      memory_static_max: 1073741824,
      memory_dynamic_max: 1073741824,
      memory_dynamic_min: 1073741824,
      memory_static_min: 536870912,
      memory_target: 1073741824,
      VCPUs_max: 1,
      VCPUs_at_startup: 1,
      user_version: 1,
      ha_restart_priority: '',
    },
  },
  // No VM_metrics or console objects are made (VM.metrics stays null, VM.consoles empty): the
  // classes exist so that their messages answer as on a host that has none.
  VM_metrics: {
    fields: `uuid:s memory_actual:i VCPUs_number:i VCPUs_utilisation:m VCPUs_CPU:m VCPUs_params:m VCPUs_flags:m state:ss
      start_time:d install_time:d last_updated:d +other_config:m hvm:b nested_virt:b nomigrate:b current_domain_type:s`,
    defaults: { current_domain_type: 'unspecified' },
  },
  console: {
    fields: 'uuid:s protocol:s location:s VM:r:VM +other_config:m',
    defaults: { protocol: 'rfb' },
  },
  // XAPI's messages (alerts) live outside its database: only message.* of message-methods.ts reach them.
  message: {
    fields: 'uuid:s name:s priority:i cls:s obj_uuid:s timestamp:d body:s',
    generated: false,
  },
  VM_guest_metrics: {
    fields: `uuid:s os_version:m netbios_name:m PV_drivers_version:m PV_drivers_up_to_date:b memory:m disks:m networks:m
      other:m last_updated:d +other_config:m live:b can_use_hotplug_vbd:s can_use_hotplug_vif:s PV_drivers_detected:b`,
    defaults: { can_use_hotplug_vbd: 'unspecified', can_use_hotplug_vif: 'unspecified' },
  },
  VDI: {
    fields: `uuid:s name_label:s name_description:s allowed_operations:ss current_operations:m SR:r:SR VBDs:rel:VBD.VDI
      crash_dumps:ss virtual_size:i physical_utilisation:i type:s sharable:b read_only:b +other_config:m storage_lock:b
      location:s managed:b missing:b parent:r:VDI +xenstore_data:m +sm_config:m is_a_snapshot:b snapshot_of:r:VDI
      snapshots:rel:VDI.snapshot_of snapshot_time:d +tags:ss allow_caching:b on_boot:s metadata_of_pool:r:pool
      metadata_latest:b is_tools_iso:b cbt_enabled:b activated_on:r:host`,
    defaults: { type: 'user', managed: true, on_boot: 'persist' },
  },
  VBD: {
    fields: `uuid:s allowed_operations:ss current_operations:m VM:r:VM VDI:r:VDI device:s +userdevice:s +bootable:b mode:s
      +type:s +unpluggable:b storage_lock:b empty:b +other_config:m currently_attached:b status_code:i status_detail:s
      runtime_properties:m +qos_algorithm_type:s +qos_algorithm_params:m qos_supported_algorithms:ss metrics:r:VBD_metrics`,
    defaults: { mode: 'RW', type: 'Disk', unpluggable: true },
  },
  VIF: {
    fields: `uuid:s allowed_operations:ss current_operations:m device:s network:r:network VM:r:VM MAC:s MTU:i
      +other_config:m currently_attached:b status_code:i status_detail:s runtime_properties:m +qos_algorithm_type:s
      +qos_algorithm_params:m qos_supported_algorithms:ss metrics:r:VIF_metrics MAC_autogenerated:b locking_mode:s
      ipv4_allowed:ss ipv6_allowed:ss ipv4_configuration_mode:s ipv4_addresses:ss ipv4_gateway:s
      ipv6_configuration_mode:s ipv6_addresses:ss ipv6_gateway:s`,
    defaults: {
      MTU: 1500,
      locking_mode: 'network_default',
      ipv4_configuration_mode: 'None',
      ipv6_configuration_mode: 'None',
    },
  },
  task: {
    fields: `uuid:s name_label:s name_description:s allowed_operations:ss current_operations:m created:d finished:d
      status:s resident_on:r:host progress:f type:s result:s error_info:ss +other_config:m subtask_of:r:task
      subtasks:rel:task.subtask_of backtrace:s`,
    defaults: { status: 'pending', type: '<none/>', backtrace: '()' },
  },
  session: {
    fields: `uuid:s this_host:r:host this_user:r:user last_active:d pool:b +other_config:m is_local_superuser:b
      subject:r:subject validation_time:d auth_user_sid:s auth_user_name:s rbac_permissions:ss tasks:ss parent:r:session
      originator:s client_certificate:b`,
    listable: false,
  },
}

function parseType(token: string): FieldType {
  const [kind, rest] = [
    token.slice(0, token.indexOf(':') === -1 ? token.length : token.indexOf(':')),
    token.includes(':') ? token.slice(token.indexOf(':') + 1) : '',
  ]
  switch (kind) {
    case 's':
    case 'i':
    case 'f':
    case 'b':
    case 'd':
    case 'ss':
    case 'si':
    case 'm':
      return { kind }
    case 'r':
    case 'sr':
      return { kind, target: rest }
    case 'rel': {
      const [from = '', via = ''] = rest.split('.')
      return { kind: 'rel', from, via }
    }
    default:
      throw new Error(`lab schema: bad field type ${token}`)
  }
}

function buildClass(name: string, source: ClassSource): ClassSpec {
  const fields: FieldSpec[] = source.fields
    .split(/\s+/)
    .filter(token => token !== '')
    .map(token => {
      const rw = token.startsWith('+')
      const body = rw ? token.slice(1) : token
      const colon = body.indexOf(':')
      return { name: body.slice(0, colon), type: parseType(body.slice(colon + 1)), rw }
    })
  return {
    name,
    fields,
    byName: new Map(fields.map(field => [field.name, field])),
    listable: source.listable ?? true,
    generated: source.generated ?? true,
    defaults: source.defaults ?? {},
  }
}

/** Every class of the lab's object database, by wire class name. */
export const SCHEMA: ReadonlyMap<string, ClassSpec> = new Map(
  Object.entries(SOURCES).map(([name, source]) => [name, buildClass(name, source)]),
)

export function classSpec(name: string): ClassSpec | undefined {
  return SCHEMA.get(name)
}

/** The stored default of a field of this type. */
export function defaultFor(type: FieldType): StoredValue {
  switch (type.kind) {
    case 's':
      return ''
    case 'i':
    case 'f':
      return 0
    case 'b':
      return false
    case 'd':
      return '19700101T00:00:00Z'
    case 'r':
      return 'OpaqueRef:NULL'
    case 'ss':
    case 'sr':
    case 'rel':
      return []
    case 'si':
      return []
    case 'm':
      return {}
  }
}
