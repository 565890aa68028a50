/**
 * Populates a fresh pool database (and its disks) from a {@link LabPoolSpec}: the pool, hosts
 * with their control domains, SRs and PBDs, networks with PIFs (VLAN PIFs for tagged ones) and
 * their NBD purpose, VMs with VBDs, VDIs, VIFs and their guest setting.
 */
import { randomUUID } from 'node:crypto'
import { NULL_REF, type Database } from './db/database.js'
import { GUEST_KEY } from './guest/guest-agent.js'
import type { LabPool } from './pool.js'
import { createVbd, createVif, setVbdAttached } from './rpc/devices.js'
import {
  parseSize,
  type LabDiskSpec,
  type LabNetworkSpec,
  type LabPoolSpec,
  type LabSrSpec,
  type LabVmSpec,
} from './spec.js'
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
  const hostNames = spec.hosts ?? [`${spec.name}-host1`]
  const hostRefs = createHosts(pool.db, hostNames, addresses)
  const master = hostRefs[0]!
  const srRefs = createSrs(pool.db, spec.srs ?? [], hostNames, hostRefs)
  const defaultSr = srRefs.get(spec.defaultSr ?? spec.srs?.[0]?.name ?? '') ?? NULL_REF
  pool.db.create('pool', {
    name_label: spec.name,
    master,
    default_SR: defaultSr,
    suspend_image_SR: defaultSr,
    crash_dump_SR: defaultSr,
    cpu_info: { cpu_count: String(4 * hostRefs.length), socket_count: String(hostRefs.length), vendor: 'GenuineIntel' },
    restrictions: { restrict_vswitch_controller: 'false', restrict_pool_size: 'false' },
  })
  const networkRefs = createNetworks(pool.db, spec.networks ?? [], hostRefs, addresses)
  // guest data seeds for disks that name none, and the domids of running VMs, count up across the pool
  const seeds = { next: 1 }
  for (const vmSpec of spec.vms ?? []) await createVm(pool, vmSpec, { master, srRefs, defaultSr, networkRefs, seeds })
}

/** The hosts, each with its control domain; returns their refs in spec order. */
function createHosts(db: Database, hostNames: readonly string[], addresses: readonly string[]): string[] {
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
  return hostRefs
}

/** The SRs, each plugged (a PBD) on every host if shared, else on its own host; returns their refs by name. */
function createSrs(
  db: Database,
  srs: readonly LabSrSpec[],
  hostNames: readonly string[],
  hostRefs: readonly string[],
): Map<string, string> {
  const srRefs = new Map<string, string>()
  for (const sr of srs) {
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
  return srRefs
}

/**
 * The networks, each with a PIF on every host (a VLAN PIF for a tagged one); the first network,
 * when untagged, is the management network, its PIFs holding the host addresses. Returns refs by name.
 */
function createNetworks(
  db: Database,
  networks: readonly LabNetworkSpec[],
  hostRefs: readonly string[],
  addresses: readonly string[],
): Map<string, string> {
  const networkRefs = new Map<string, string>()
  let bridge = 0
  // NBD is on by default, on the management network, where the host addresses are
  const anyPurpose = networks.some(network => network.purpose !== undefined)
  for (const [index, network] of networks.entries()) {
    const management = network.vlan === undefined && index === 0
    const ref = db.create('network', {
      name_label: network.name,
      MTU: network.mtu ?? 1500,
      bridge: network.bridge ?? (network.vlan === undefined ? `xenbr${bridge++}` : `xapi${bridge++}`),
      purpose: network.purpose ?? (management && !anyPurpose ? ['nbd'] : []),
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
        management,
        ip_configuration_mode: management ? 'Static' : 'None',
        IP: management ? addresses[i]! : '',
        netmask: management ? '255.0.0.0' : '',
      })
    }
  }
  return networkRefs
}

/** What a VM of the spec is placed on and connected to. */
interface VmPlacement {
  readonly master: string
  readonly srRefs: ReadonlyMap<string, string>
  readonly defaultSr: string
  readonly networkRefs: ReadonlyMap<string, string>
  readonly seeds: { next: number }
}

/** A VM with its disks (filled with guest data) and VIFs; a running one resident on the master, its devices attached. */
async function createVm(pool: LabPool, vmSpec: LabVmSpec, placement: VmPlacement): Promise<void> {
  const { db } = pool
  const memory = parseSize(vmSpec.memory ?? '1 GiB', `VM ${vmSpec.name} memory`)
  const running = vmSpec.powerState === 'Running'
  const vm = db.create('VM', {
    name_label: vmSpec.name,
    name_description: vmSpec.description ?? '',
    power_state: running ? 'Running' : 'Halted',
    resident_on: running ? placement.master : NULL_REF,
    domid: running ? 1 + placement.seeds.next : -1,
    memory_static_max: memory,
    memory_dynamic_max: memory,
    memory_dynamic_min: memory,
    memory_target: memory,
    memory_static_min: Math.min(memory, 512 * 1024 * 1024),
    VCPUs_max: vmSpec.vcpus ?? 1,
    VCPUs_at_startup: vmSpec.vcpus ?? 1,
    tags: vmSpec.tags ?? [],
    other_config: {
      mac_seed: randomUUID(),
      ...vmSpec.otherConfig,
      ...(vmSpec.guest === undefined ? {} : { [GUEST_KEY]: JSON.stringify(vmSpec.guest) }),
    },
    blocked_operations: vmSpec.blockedOperations ?? {},
    order: vmSpec.order ?? 0,
    start_delay: vmSpec.startDelay ?? 0,
    ha_restart_priority: vmSpec.haRestartPriority ?? '',
    platform: { timeoffset: '0', 'device-model': 'qemu-upstream-compat', viridian: 'true' },
    HVM_boot_params: { order: 'cd' },
    generation_id: '0:0',
  })
  for (const [i, disk] of (vmSpec.disks ?? []).entries()) {
    const vdi = await createDisk(pool, vmSpec, i, disk, placement)
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
      network: placement.networkRefs.get(networkName)!,
      VM: vm,
      MAC: '',
      MTU: 1500,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    })
    if (running) db.update('VIF', vif, { currently_attached: true })
  }
  // A VM the spec starts has booted before the lab came up: its tools have reported, when the
  // spec says what its guest does (without a word, it has no metrics, as the lab always had).
  const tools = vmSpec.guest?.tools ?? pool.guests.defaults.tools
  if (running && typeof tools === 'number') pool.guests.report(vm)
}

/** Disk `i` of a VM: a VDI on its SR (else the default SR), `filled` bytes of deterministic guest data written. */
async function createDisk(
  pool: LabPool,
  vmSpec: LabVmSpec,
  i: number,
  disk: LabDiskSpec,
  placement: VmPlacement,
): Promise<string> {
  const srRef = placement.srRefs.get(disk.sr ?? '') ?? placement.defaultSr
  const size = Math.ceil(parseSize(disk.size, `VM ${vmSpec.name} disk size`) / BLOCK_SIZE) * BLOCK_SIZE
  const uuid = randomUUID()
  await pool.storage.create(uuid, size)
  const filled = parseSize(disk.filled ?? 0, `VM ${vmSpec.name} disk filled`)
  if (filled > 0) await pool.storage.fill(uuid, { bytes: filled, seed: disk.seed ?? placement.seeds.next++ })
  const vdi = pool.db.create('VDI', {
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
  return vdi
}
