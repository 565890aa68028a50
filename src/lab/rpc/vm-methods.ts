/**
 * VM messages with XAPI's semantics (reference §4.2, §4.3): snapshot / clone / copy make a new
 * VM record (blocked_operations not copied) with snapshotted, cloned or copied disks; destroy
 * leaves the VDIs behind; create forces blocked_operations to `{}`. A start hands the VM to its
 * guest (tools report later); a halt or destroy takes the guest metrics away.
 */
import { randomUUID } from 'node:crypto'
import { NULL_REF } from '../db/database.js'
import { xapiFault } from '../fault.js'
import type { LabRecord, StoredValue } from '../db/schema.js'
import type { LabPool } from '../pool.js'
import { formatXapiDate, EPOCH } from '../wire/values.js'
import { encodeXmlValue } from '../wire/xmlrpc.js'
import { copyVbd, copyVif, setVbdAttached } from './devices.js'
import type { CallContext, MethodRegistry } from './registry.js'
import { readStruct, type MemberSpec } from './struct-args.js'
import { cloneVdi, copyVdi, destroyVdi, snapshotVdi } from './vdi-methods.js'
import { assertVmOperation, withVmOperation, type PowerState } from './vm-checks.js'

// What snapshot, clone and copy take from the source (xapi_vm_clone's copy_vm_record): HA
// restart priority yes, but ha_always_run, order, start_delay and shutdown_delay start over
// (false, 0) on the new VM, so these keep their schema defaults.
const COPIED_FIELDS =
  `name_description user_version memory_static_max memory_dynamic_max memory_dynamic_min memory_static_min
  memory_target VCPUs_params VCPUs_max VCPUs_at_startup actions_after_softreboot actions_after_shutdown actions_after_reboot
  actions_after_crash PV_bootloader PV_kernel PV_ramdisk PV_args PV_bootloader_args PV_legacy_args HVM_boot_policy
  HVM_boot_params HVM_shadow_multiplier platform PCI_bus xenstore_data tags bios_strings recommendations last_boot_CPU_flags
  last_booted_record domain_type NVRAM affinity has_vendor_device hardware_platform_version reference_label is_a_template
  ha_restart_priority`.split(/\s+/)

type CopyKind = 'snapshot' | 'clone' | 'copy'

function newVmFields(
  pool: LabPool,
  sourceRef: string,
  source: Readonly<LabRecord>,
  kind: CopyKind,
  name: string,
): Record<string, StoredValue> {
  const fields: Record<string, StoredValue> = { name_label: name }
  for (const field of COPIED_FIELDS) fields[field] = source[field]!
  const otherConfig = { ...(source['other_config'] as Readonly<Record<string, string>>) }
  const powerState = source['power_state'] as PowerState
  if (kind === 'snapshot') {
    Object.assign(fields, {
      is_a_template: true,
      is_a_snapshot: true,
      snapshot_of: sourceRef,
      snapshot_time: formatXapiDate(new Date()),
      snapshot_info: { 'power-state-at-snapshot': powerState, 'disk-snapshot-type': 'crash_consistent' },
      snapshot_metadata: encodeXmlValue(pool.db.toWire('VM', sourceRef)),
      transportable_snapshot_id: '',
      parent: source['parent']!,
      power_state: 'Halted',
    })
  } else {
    otherConfig['mac_seed'] = randomUUID()
    delete otherConfig['default_template']
    delete otherConfig['xensource_internal']
    if (source['is_a_template'] === true && source['is_a_snapshot'] !== true)
      otherConfig['base_template_name'] = source['name_label'] as string
    Object.assign(fields, { power_state: powerState === 'Suspended' ? 'Suspended' : 'Halted' })
  }
  Object.assign(fields, { other_config: otherConfig, blocked_operations: {}, generation_id: '', version: 0 })
  return fields
}

export async function copyVm(
  ctx: CallContext,
  vmRef: string,
  name: string,
  kind: CopyKind,
  options: { ignoreVdis?: readonly string[]; sr?: string },
): Promise<string> {
  const { pool } = ctx
  const source = pool.db.get('VM', vmRef)
  const allowed: PowerState[] =
    kind === 'snapshot'
      ? ['Halted', 'Paused', 'Running', 'Suspended']
      : source['is_a_snapshot'] === true
        ? ['Halted', 'Suspended']
        : ['Halted']
  assertVmOperation(pool, vmRef, kind, allowed)
  return withVmOperation(pool, vmRef, kind, ctx.task?.ref, async () => {
    const createdVdis: string[] = []
    let newVm: string | undefined
    try {
      const fields = newVmFields(pool, vmRef, source, kind, name)
      newVm = pool.db.create('VM', fields)
      const macSeed =
        kind === 'snapshot' ? undefined : ((fields['other_config'] as Record<string, string>)['mac_seed'] as string)
      for (const vbdRef of pool.db.related('VBD', 'VM', vmRef)) {
        ctx.task?.checkCancelled()
        const vbd = pool.db.get('VBD', vbdRef)
        const vdiRef = vbd['VDI'] as string
        let target = NULL_REF
        if (vbd['empty'] === true || pool.isNull(vdiRef)) target = NULL_REF
        else if (vbd['type'] === 'CD') target = vdiRef
        else if (kind === 'snapshot' && options.ignoreVdis?.includes(vdiRef) === true) continue
        else {
          target =
            kind === 'snapshot'
              ? await snapshotVdi(pool, vdiRef)
              : kind === 'clone'
                ? await cloneVdi(pool, vdiRef)
                : await copyVdi(pool, vdiRef, options.sr ?? NULL_REF, NULL_REF, NULL_REF)
          createdVdis.push(target)
        }
        copyVbd(pool, vbd, newVm, target)
      }
      for (const vifRef of pool.db.related('VIF', 'VM', vmRef))
        copyVif(pool, pool.db.get('VIF', vifRef), newVm, macSeed)
      // A new snapshot takes the VM's old place in the snapshot tree.
      if (kind === 'snapshot') pool.db.update('VM', vmRef, { parent: newVm })
      return newVm
    } catch (error) {
      // On any failure the new disks and VM are deleted.
      if (newVm !== undefined) destroyVmRecord(pool, newVm)
      for (const vdi of createdVdis) await destroyVdi(pool, vdi).catch(() => undefined)
      throw error
    }
  })
}

function destroyVmRecord(pool: LabPool, vmRef: string): void {
  const vm = pool.db.get('VM', vmRef)
  pool.guests.halted(vmRef)
  for (const vbd of pool.db.related('VBD', 'VM', vmRef)) pool.db.destroy('VBD', vbd)
  for (const vif of pool.db.related('VIF', 'VM', vmRef)) pool.db.destroy('VIF', vif)
  for (const child of pool.db.related('VM', 'parent', vmRef)) pool.db.update('VM', child, { parent: vm['parent']! })
  pool.db.destroy('VM', vmRef)
}

const CREATE_REQUIRED: MemberSpec[] = [
  ['user_version', 'int'],
  ['is_a_template', 'bool'],
  ['affinity', 'string'],
  ['memory_static_max', 'int'],
  ['memory_dynamic_max', 'int'],
  ['memory_dynamic_min', 'int'],
  ['memory_static_min', 'int'],
  ['VCPUs_params', 'map'],
  ['VCPUs_max', 'int'],
  ['VCPUs_at_startup', 'int'],
  ['actions_after_shutdown', 'string'],
  ['actions_after_reboot', 'string'],
  ['actions_after_crash', 'string'],
  ['PV_bootloader', 'string'],
  ['PV_kernel', 'string'],
  ['PV_ramdisk', 'string'],
  ['PV_args', 'string'],
  ['PV_bootloader_args', 'string'],
  ['PV_legacy_args', 'string'],
  ['HVM_boot_policy', 'string'],
  ['HVM_boot_params', 'map'],
  ['platform', 'map'],
  ['PCI_bus', 'string'],
  ['other_config', 'map'],
  ['recommendations', 'string'],
]
const CREATE_OPTIONAL: MemberSpec[] = [
  ['name_label', 'string'],
  ['name_description', 'string'],
  ['power_state', 'string'],
  ['suspend_VDI', 'string'],
  ['memory_target', 'int'],
  ['actions_after_softreboot', 'string'],
  ['HVM_shadow_multiplier', 'float'],
  ['last_boot_CPU_flags', 'map'],
  ['last_booted_record', 'string'],
  ['xenstore_data', 'map'],
  ['ha_always_run', 'bool'],
  ['ha_restart_priority', 'string'],
  ['tags', 'set'],
  ['appliance', 'string'],
  ['start_delay', 'int'],
  ['shutdown_delay', 'int'],
  ['order', 'int'],
  ['suspend_SR', 'string'],
  ['version', 'int'],
  ['generation_id', 'string'],
  ['hardware_platform_version', 'int'],
  ['has_vendor_device', 'bool'],
  ['reference_label', 'string'],
  ['domain_type', 'string'],
  ['NVRAM', 'map'],
]

let nextDomid = 1

/** Running (or paused) on `hostRef` with a new domain; exported for resume. */
export function setRunning(pool: LabPool, vmRef: string, hostRef: string, state: 'Running' | 'Paused'): void {
  // xapi_vm.start: a VM whose restart priority is `restart` is protected while it runs
  const protectedVm = pool.db.get('VM', vmRef)['ha_restart_priority'] === 'restart'
  pool.db.update('VM', vmRef, {
    power_state: state,
    resident_on: hostRef,
    domid: nextDomid++,
    ...(protectedVm ? { ha_always_run: true } : {}),
  })
  for (const vbd of pool.db.related('VBD', 'VM', vmRef)) {
    const record = pool.db.get('VBD', vbd)
    const n = Number(record['userdevice'])
    setVbdAttached(
      pool,
      vbd,
      true,
      Number.isInteger(n) && n < 16 ? `xvd${'abcdefghijklmnop'[n]}` : (record['device'] as string),
    )
  }
  for (const vif of pool.db.related('VIF', 'VM', vmRef)) pool.db.update('VIF', vif, { currently_attached: true })
  // a paused domain runs no guest code: its tools report only once it runs
  if (state === 'Running') pool.guests.started(vmRef)
}

/** Halted as after any shutdown; exported for a pool that loses power. */
export function setHalted(pool: LabPool, vmRef: string): void {
  pool.guests.halted(vmRef)
  pool.db.update('VM', vmRef, { power_state: 'Halted', resident_on: NULL_REF, domid: -1 })
  for (const vbd of pool.db.related('VBD', 'VM', vmRef)) setVbdAttached(pool, vbd, false)
  for (const vif of pool.db.related('VIF', 'VM', vmRef)) pool.db.update('VIF', vif, { currently_attached: false })
}

export function addVmMethods(registry: MethodRegistry): void {
  registry.add({
    name: 'VM.snapshot',
    params: ['string', 'string', 'set'],
    defaulted: 1,
    async: true,
    handler: (ctx, [vm, name, ignore]) =>
      copyVm(ctx, vm as string, name as string, 'snapshot', {
        ignoreVdis: (ignore as readonly string[] | undefined) ?? [],
      }),
  })
  registry.add({
    name: 'VM.snapshot_with_quiesce',
    params: ['string', 'string'],
    async: true,
    removed: true,
    handler: () => '',
  })
  registry.add({
    name: 'VM.clone',
    params: ['string', 'string'],
    async: true,
    handler: (ctx, [vm, name]) => copyVm(ctx, vm as string, name as string, 'clone', {}),
  })
  registry.add({
    name: 'VM.copy',
    params: ['string', 'string', 'string'],
    async: true,
    handler: (ctx, [vm, name, sr]) => copyVm(ctx, vm as string, name as string, 'copy', { sr: sr as string }),
  })
  registry.add({
    name: 'VM.destroy',
    params: ['string'],
    async: true,
    handler: ({ pool }, [vm]) => {
      assertVmOperation(pool, vm as string, 'destroy', ['Halted', 'Suspended'])
      destroyVmRecord(pool, vm as string)
      return ''
    },
  })
  registry.add({
    name: 'VM.create',
    params: ['struct'],
    async: true,
    handler: ({ pool }, [struct]) => {
      const fields = readStruct(struct!, CREATE_REQUIRED, CREATE_OPTIONAL)
      const suspended = fields['power_state'] === 'Suspended'
      if (
        suspended &&
        (fields['suspend_VDI'] === undefined ||
          fields['last_booted_record'] === undefined ||
          fields['last_boot_CPU_flags'] === undefined)
      ) {
        throw xapiFault('VM_BAD_POWER_STATE', NULL_REF, 'suspended', 'halted')
      }
      const otherConfig = { ...(fields['other_config'] as Record<string, string>) }
      otherConfig['mac_seed'] ??= randomUUID()
      const domainType =
        fields['domain_type'] === undefined || fields['domain_type'] === 'unspecified'
          ? fields['HVM_boot_policy'] === ''
            ? 'pv'
            : 'hvm'
          : fields['domain_type']
      return pool.db.create('VM', {
        ...fields,
        power_state: suspended ? 'Suspended' : 'Halted',
        other_config: otherConfig,
        domain_type: domainType,
        // Whatever the caller passed: VM.create ignores blocked_operations (reference §4.3).
        blocked_operations: {},
        is_a_snapshot: false,
        snapshot_of: NULL_REF,
        snapshot_time: EPOCH,
        memory_target: fields['memory_target'] ?? fields['memory_dynamic_max']!,
      })
    },
  })
  registry.add({
    name: 'VM.start',
    params: ['string', 'bool', 'bool'],
    async: true,
    handler: ({ pool }, [vm, paused]) => {
      assertVmOperation(pool, vm as string, 'start', ['Halted'])
      const affinity = pool.db.get('VM', vm as string)['affinity'] as string
      setRunning(
        pool,
        vm as string,
        pool.db.find('host', affinity) !== undefined ? affinity : pool.masterRef,
        paused === true ? 'Paused' : 'Running',
      )
      return ''
    },
  })
  registry.add({
    name: 'VM.start_on',
    params: ['string', 'string', 'bool', 'bool'],
    async: true,
    handler: ({ pool }, [vm, host, paused]) => {
      assertVmOperation(pool, vm as string, 'start_on', ['Halted'])
      pool.db.get('host', host as string)
      setRunning(pool, vm as string, host as string, paused === true ? 'Paused' : 'Running')
      return ''
    },
  })
  registry.add({
    name: 'VM.clean_shutdown',
    params: ['string'],
    async: true,
    handler: ({ pool }, [vm]) => {
      assertVmOperation(pool, vm as string, 'clean_shutdown', ['Running'])
      // xapi_vm.clean_shutdown / hard_shutdown: an explicit shutdown ends HA protection
      pool.db.update('VM', vm as string, { ha_always_run: false })
      setHalted(pool, vm as string)
      return ''
    },
  })
  registry.add({
    name: 'VM.hard_shutdown',
    params: ['string'],
    async: true,
    handler: async ({ pool }, [vm]) => {
      assertVmOperation(pool, vm as string, 'hard_shutdown', ['Paused', 'Running', 'Suspended'])
      await dropSuspendImage(pool, vm as string)
      pool.db.update('VM', vm as string, { ha_always_run: false })
      setHalted(pool, vm as string)
      return ''
    },
  })
}

/** xapi_vm.hard_shutdown of a suspended VM: its suspend VDI is destroyed and forgotten. */
export async function dropSuspendImage(pool: LabPool, vm: string): Promise<void> {
  const memory = pool.db.get('VM', vm)['suspend_VDI'] as string
  if (pool.isNull(memory)) return
  pool.db.update('VM', vm, { suspend_VDI: NULL_REF })
  if (pool.db.find('VDI', memory) !== undefined) await destroyVdi(pool, memory).catch(() => undefined)
}
