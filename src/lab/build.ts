/**
 * Populates a fresh pool database (and its disks) from a {@link LabPoolSpec}: the pool, hosts
 * with their control domains, SRs and PBDs, networks with PIFs (VLAN PIFs for tagged ones),
 * VMs with VBDs, VDIs and VIFs.
 */
import { randomUUID } from 'node:crypto'
import { NULL_REF } from './db/database.js'
import type { LabPool } from './pool.js'
import { createVbd, createVif, setVbdAttached } from './rpc/devices.js'
import { parseSize, type LabPoolSpec } from './spec.js'
import { BLOCK_SIZE } from './storage/types.js'
import { formatXapiDate } from './wire/values.js'

const SOFTWARE_VERSION = {
  product_version: '8.3.0',
  product_version_text: '8.3',
  product_version_text_short: '8.3',
  platform_name: 'XCP',
  platform_version: '3.4.0',
  product_brand: 'XCP-ng',
  build_number: 'lab',
  xapi: '24.16',
  xapi_build: '24.16.0',
  xen: '4.17.4',
  linux: '4.19.0+1',
  xencenter_min: '2.21',
  xencenter_max: '2.21',
  network_backend: 'openvswitch',
  db_schema: '5.780',
}

/** What a plugged VHD-based SR allows (`storage_operations`). */
const SR_OPERATIONS = [
  'scan',
  'destroy',
  'forget',
  'plug',
  'unplug',
  'update',
  'vdi_create',
  'vdi_introduce',
  'vdi_destroy',
  'vdi_resize',
  'vdi_clone',
  'vdi_snapshot',
  'vdi_mirror',
  'vdi_enable_cbt',
  'vdi_disable_cbt',
  'vdi_data_destroy',
  'vdi_list_changed_blocks',
  'vdi_set_on_boot',
  'pbd_create',
  'pbd_destroy',
]

/** Host addresses are assigned by the caller; hosts are created in spec order, the first is the master. */
export async function populatePool(pool: LabPool, spec: LabPoolSpec, addresses: readonly string[]): Promise<void> {
  const { db } = pool
  const hostNames = spec.hosts ?? [`${spec.name}-host1`]
  const hostRefs = hostNames.map((name, i) => {
    const address = addresses[i]!
    return db.create('host', {
      name_label: name,
      hostname: name,
      address,
      software_version: SOFTWARE_VERSION,
      cpu_info: { cpu_count: '4', socket_count: '1', vendor: 'GenuineIntel', speed: '2400.000', modelname: 'Lab CPU' },
      license_params: { sku_type: 'free' },
      bios_strings: { 'bios-vendor': 'xen-cr lab' },
      capabilities: ['xen-3.0-x86_64', 'hvm-3.0-x86_64'],
      allowed_operations: ['provision', 'evacuate', 'reboot', 'shutdown', 'vm_start', 'vm_resume', 'vm_migrate'],
      last_software_update: formatXapiDate(new Date()),
    })
  })
  for (const [i, hostRef] of hostRefs.entries()) {
    const dom0 = db.create('VM', {
      name_label: `Control domain on host: ${hostNames[i]!}`,
      is_control_domain: true,
      power_state: 'Running',
      resident_on: hostRef,
      domid: 0,
      domain_type: 'pv',
      HVM_boot_policy: '',
      other_config: { storage_driver_domain: '' },
    })
    db.update('host', hostRef, { control_domain: dom0 })
  }
  const master = hostRefs[0]!

  const srRefs = new Map<string, string>()
  for (const sr of spec.srs ?? []) {
    const ref = db.create('SR', {
      name_label: sr.name,
      type: sr.type ?? 'ext',
      content_type: 'user',
      shared: sr.shared === true,
      physical_size: parseSize(sr.size ?? '1 TiB', `SR ${sr.name} size`),
      sm_config: { devserial: 'lab' },
      allowed_operations: SR_OPERATIONS,
    })
    srRefs.set(sr.name, ref)
    const hosts = sr.shared === true ? hostRefs : [hostRefs[hostNames.indexOf(sr.host ?? hostNames[0]!)]!]
    for (const host of hosts)
      db.create('PBD', {
        host,
        SR: ref,
        currently_attached: true,
        device_config: { location: `/var/run/sr-mount/${db.get('SR', ref)['uuid'] as string}` },
      })
  }
  const defaultSr = srRefs.get(spec.defaultSr ?? spec.srs?.[0]?.name ?? '') ?? NULL_REF

  db.create('pool', {
    name_label: spec.name,
    master,
    default_SR: defaultSr,
    suspend_image_SR: defaultSr,
    crash_dump_SR: defaultSr,
    cpu_info: { cpu_count: String(4 * hostRefs.length), socket_count: String(hostRefs.length), vendor: 'GenuineIntel' },
    restrictions: { restrict_vswitch_controller: 'false', restrict_pool_size: 'false' },
  })

  const networkRefs = new Map<string, string>()
  let bridge = 0
  for (const network of spec.networks ?? []) {
    const ref = db.create('network', {
      name_label: network.name,
      MTU: network.mtu ?? 1500,
      bridge: network.bridge ?? (network.vlan === undefined ? `xenbr${bridge++}` : `xapi${bridge++}`),
    })
    networkRefs.set(network.name, ref)
    for (const [i, host] of hostRefs.entries()) {
      const mac = `02:00:00:${(i + 1).toString(16).padStart(2, '0')}:00:${bridge.toString(16).padStart(2, '0')}`
      db.create('PIF', {
        device: network.vlan === undefined ? 'eth0' : `eth0.${network.vlan}`,
        network: ref,
        host,
        MAC: mac,
        MTU: network.mtu ?? 1500,
        VLAN: network.vlan ?? -1,
        physical: network.vlan === undefined,
        currently_attached: true,
        management: network.vlan === undefined && networkRefs.size === 1,
        ip_configuration_mode: network.vlan === undefined && networkRefs.size === 1 ? 'Static' : 'None',
        IP: network.vlan === undefined && networkRefs.size === 1 ? addresses[i]! : '',
        netmask: network.vlan === undefined && networkRefs.size === 1 ? '255.0.0.0' : '',
      })
    }
  }

  let seed = 1
  for (const vmSpec of spec.vms ?? []) {
    const memory = parseSize(vmSpec.memory ?? '1 GiB', `VM ${vmSpec.name} memory`)
    const running = vmSpec.powerState === 'Running'
    const vm = db.create('VM', {
      name_label: vmSpec.name,
      name_description: vmSpec.description ?? '',
      power_state: running ? 'Running' : 'Halted',
      resident_on: running ? master : NULL_REF,
      domid: running ? 1 + seed : -1,
      memory_static_max: memory,
      memory_dynamic_max: memory,
      memory_dynamic_min: memory,
      memory_target: memory,
      memory_static_min: Math.min(memory, 512 * 1024 * 1024),
      VCPUs_max: vmSpec.vcpus ?? 1,
      VCPUs_at_startup: vmSpec.vcpus ?? 1,
      tags: vmSpec.tags ?? [],
      other_config: { mac_seed: randomUUID(), ...vmSpec.otherConfig },
      blocked_operations: vmSpec.blockedOperations ?? {},
      platform: { timeoffset: '0', 'device-model': 'qemu-upstream-compat', viridian: 'true' },
      HVM_boot_params: { order: 'cd' },
      generation_id: '0:0',
    })
    for (const [i, disk] of (vmSpec.disks ?? []).entries()) {
      const srRef = srRefs.get(disk.sr ?? '') ?? defaultSr
      const size = Math.ceil(parseSize(disk.size, `VM ${vmSpec.name} disk size`) / BLOCK_SIZE) * BLOCK_SIZE
      const uuid = randomUUID()
      await pool.storage.create(uuid, size)
      const filled = parseSize(disk.filled ?? 0, `VM ${vmSpec.name} disk filled`)
      if (filled > 0) await pool.storage.fill(uuid, { bytes: filled, seed: disk.seed ?? seed++ })
      const vdi = db.create('VDI', {
        uuid,
        location: uuid,
        name_label: disk.name ?? `${vmSpec.name} ${i}`,
        name_description: 'Created by the xen-cr lab',
        SR: srRef,
        virtual_size: size,
        type: 'user',
        sm_config: { vdi_type: 'vhd' },
      })
      pool.refreshVdi(vdi)
      const vbd = createVbd(pool, {
        VM: vm,
        VDI: vdi,
        userdevice: String(i),
        bootable: i === 0,
        mode: 'RW',
        type: 'Disk',
        empty: false,
        other_config: { owner: '' },
        qos_algorithm_type: '',
        qos_algorithm_params: {},
      })
      if (running) setVbdAttached(pool, vbd, true, `xvd${'abcdefghijklmnop'[i] ?? 'a'}`)
    }
    for (const [i, networkName] of (vmSpec.networks ?? []).entries()) {
      const vif = createVif(pool, {
        device: String(i),
        network: networkRefs.get(networkName)!,
        VM: vm,
        MAC: '',
        MTU: 1500,
        other_config: {},
        qos_algorithm_type: '',
        qos_algorithm_params: {},
      })
      if (running) db.update('VIF', vif, { currently_attached: true })
    }
  }
}
