/**
 * VM setters of static (SRO) fields and the other configuration messages, with the checks of
 * xapi's xapi_vm.ml and message_forwarding.ml: the operation each one runs as (so blocked
 * operations, power state, templates and snapshots are refused as for any operation, e.g.
 * `changing_VCPUs` only on a halted VM), then the value checks (`0 < VCPUs_at_startup ≤
 * VCPUs_max`, memory constraints, enum values), then the write.
 */
import { NULL_REF } from '../db/database.js'
import { xapiFault } from '../fault.js'
import type { StoredValue } from '../db/schema.js'
import type { LabPool } from '../pool.js'
import type { MethodRegistry } from './registry.js'
import { assertVmOperation, type PowerState } from './vm-checks.js'

/** An enum parameter: matched case-insensitively, stored as the datamodel spells it. */
export function enumValue(enumName: string, values: readonly string[], given: string): string {
  const found = values.find(v => v.toLowerCase() === given.toLowerCase())
  if (found === undefined) throw xapiFault('INTERNAL_ERROR', `Unknown enum value '${given}' for ${enumName}`)
  return found
}

const ON_CRASH = ['destroy', 'coredump_and_destroy', 'restart', 'coredump_and_restart', 'preserve', 'rename_restart']
const ON_NORMAL_EXIT = ['destroy', 'restart']
const ON_SOFTREBOOT = ['soft_reboot', 'destroy', 'restart', 'preserve']
const DOMAIN_TYPES = ['hvm', 'pv', 'pv_in_pvh', 'pvh', 'unspecified']
/** Constants.ha_valid_restart_priorities */
const HA_RESTART_PRIORITIES = ['restart', 'best-effort', '']

/** xapi_vm_helpers: what HVM_boot_policy a domain type implies, and back. */
function hvmBootPolicyOf(domainType: string): string {
  return domainType === 'hvm' ? 'BIOS order' : ''
}
function domainTypeOf(hvmBootPolicy: string): string {
  return hvmBootPolicy === '' ? 'pv' : 'hvm'
}

type Setter = (pool: LabPool, vm: string, value: StoredValue) => void

/** A setter that runs as VM operation `op` (message_forwarding's with_vm_operation) in these power states. */
function asOperation(op: string, states: readonly PowerState[], set: Setter): Setter {
  return (pool, vm, value) => {
    assertVmOperation(pool, vm, op, states)
    set(pool, vm, value)
  }
}

function write(field: string): Setter {
  return (pool, vm, value) => pool.db.update('VM', vm, { [field]: value })
}

function memoryOrder(fields: Readonly<Record<string, StoredValue>>): void {
  const [smin, dmin, dmax, smax] = [
    'memory_static_min',
    'memory_dynamic_min',
    'memory_dynamic_max',
    'memory_static_max',
  ].map(f => fields[f] as number) as [number, number, number, number]
  if (!(smin <= dmin && dmin <= dmax && dmax <= smax))
    throw xapiFault(
      'MEMORY_CONSTRAINT_VIOLATION',
      'Memory limits must satisfy: static_min <= dynamic_min <= dynamic_max <= static_max',
    )
}

/** Writes memory fields after checking the whole set still satisfies XAPI's order. */
function setMemory(pool: LabPool, vm: string, patch: Readonly<Record<string, number>>): void {
  const record = pool.db.get('VM', vm)
  memoryOrder({ ...record, ...patch })
  pool.db.update('VM', vm, patch)
}

function nonNegative(field: string): Setter {
  return (pool, vm, value) => {
    const n = value as number
    if (n < 0) throw xapiFault('INVALID_VALUE', `${field} must be non-negative`, String(n))
    pool.db.update('VM', vm, { [field]: value })
  }
}

/** xapi_vm.set_ha_restart_priority: validated; a running VM's ha_always_run follows it. */
export function setHaRestartPriority(pool: LabPool, vm: string, value: string): void {
  if (!HA_RESTART_PRIORITIES.includes(value)) throw xapiFault('INVALID_VALUE', 'ha_restart_priority', value)
  const record = pool.db.get('VM', vm)
  if (record['ha_restart_priority'] === value) return
  pool.db.update('VM', vm, {
    ha_restart_priority: value,
    ...(record['power_state'] === 'Running' ? { ha_always_run: value === 'restart' } : {}),
  })
}

const SETTERS: ReadonlyArray<readonly [name: string, type: 'int' | 'float' | 'bool' | 'string' | 'map', Setter]> = [
  [
    'set_VCPUs_max',
    'int',
    asOperation('changing_VCPUs', ['Halted'], (pool, vm, value) => {
      const startup = pool.db.get('VM', vm)['VCPUs_at_startup'] as number
      const n = value as number
      if (n < 1 || n < startup)
        throw xapiFault('INVALID_VALUE', 'VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max', String(n))
      pool.db.update('VM', vm, { VCPUs_max: value })
    }),
  ],
  [
    'set_VCPUs_at_startup',
    'int',
    asOperation('changing_VCPUs', ['Halted'], (pool, vm, value) => {
      const max = pool.db.get('VM', vm)['VCPUs_max'] as number
      const n = value as number
      if (n < 1 || n > max)
        throw xapiFault('INVALID_VALUE', 'VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max', String(n))
      pool.db.update('VM', vm, { VCPUs_at_startup: value })
    }),
  ],
  [
    'set_HVM_shadow_multiplier',
    'float',
    asOperation('changing_shadow_memory', ['Halted'], (pool, vm, value) => {
      const n = value as number
      if (n < 1) throw xapiFault('INVALID_VALUE', 'multiplier', String(n))
      pool.db.update('VM', vm, { HVM_shadow_multiplier: value })
    }),
  ],
  [
    'set_actions_after_crash',
    'string',
    (pool, vm, value) =>
      pool.db.update('VM', vm, { actions_after_crash: enumValue('on_crash_behaviour', ON_CRASH, value as string) }),
  ],
  [
    'set_actions_after_shutdown',
    'string',
    (pool, vm, value) =>
      pool.db.update('VM', vm, {
        actions_after_shutdown: enumValue('on_normal_exit', ON_NORMAL_EXIT, value as string),
      }),
  ],
  [
    'set_actions_after_reboot',
    'string',
    (pool, vm, value) =>
      pool.db.update('VM', vm, { actions_after_reboot: enumValue('on_normal_exit', ON_NORMAL_EXIT, value as string) }),
  ],
  [
    'set_actions_after_softreboot',
    'string',
    (pool, vm, value) =>
      pool.db.update('VM', vm, {
        actions_after_softreboot: enumValue('on_softreboot_behavior', ON_SOFTREBOOT, value as string),
      }),
  ],
  [
    'set_domain_type',
    'string',
    (pool, vm, value) => {
      const domainType = enumValue('domain_type', DOMAIN_TYPES, value as string)
      if (domainType === 'unspecified') throw xapiFault('INVALID_VALUE', 'domain_type', domainType)
      pool.db.update('VM', vm, { domain_type: domainType, HVM_boot_policy: hvmBootPolicyOf(domainType) })
    },
  ],
  [
    'set_HVM_boot_policy',
    'string',
    (pool, vm, value) =>
      pool.db.update('VM', vm, { domain_type: domainTypeOf(value as string), HVM_boot_policy: value }),
  ],
  [
    'set_has_vendor_device',
    'bool',
    (pool, vm, value) => {
      // xapi_vm.assert_can_set_has_vendor_device: assert_initial_power_state_is Halted
      const state = pool.db.get('VM', vm)['power_state'] as string
      if (state !== 'Halted') throw xapiFault('VM_BAD_POWER_STATE', vm, 'halted', state.toLowerCase())
      pool.db.update('VM', vm, { has_vendor_device: value })
    },
  ],
  ['set_order', 'int', nonNegative('order')],
  ['set_start_delay', 'int', nonNegative('start_delay')],
  ['set_shutdown_delay', 'int', nonNegative('shutdown_delay')],
  [
    'set_memory_static_max',
    'int',
    asOperation('changing_static_range', ['Halted'], (pool, vm, value) =>
      setMemory(pool, vm, { memory_static_max: value as number }),
    ),
  ],
  [
    'set_memory_static_min',
    'int',
    asOperation('changing_static_range', ['Halted'], (pool, vm, value) =>
      setMemory(pool, vm, { memory_static_min: value as number }),
    ),
  ],
  [
    'set_memory_dynamic_max',
    'int',
    asOperation('changing_dynamic_range', ['Halted', 'Running'], (pool, vm, value) =>
      setMemory(pool, vm, { memory_dynamic_max: value as number }),
    ),
  ],
  [
    'set_memory_dynamic_min',
    'int',
    // memory_target follows dynamic_min, as set_memory_dynamic_range keeps it
    asOperation('changing_dynamic_range', ['Halted', 'Running'], (pool, vm, value) =>
      setMemory(pool, vm, { memory_dynamic_min: value as number, memory_target: value as number }),
    ),
  ],
  [
    'set_memory',
    'int',
    asOperation('changing_memory_limits', ['Halted'], (pool, vm, value) =>
      setMemory(pool, vm, {
        memory_static_max: value as number,
        memory_dynamic_min: value as number,
        memory_dynamic_max: value as number,
        memory_target: value as number,
      }),
    ),
  ],
  ['set_ha_restart_priority', 'string', (pool, vm, value) => setHaRestartPriority(pool, vm, value as string)],
  // Deprecated since Boston: XAPI maps it onto the restart priority.
  ['set_ha_always_run', 'bool', (pool, vm, value) => setHaRestartPriority(pool, vm, value === true ? 'restart' : '')],
  ['set_is_default_template', 'bool', write('is_default_template')],
  [
    'set_bios_strings',
    'map',
    (pool, vm, value) => {
      if (Object.keys(pool.db.get('VM', vm)['bios_strings'] as Record<string, string>).length > 0)
        throw xapiFault('VM_BIOS_STRINGS_ALREADY_SET')
      const allowed = new Set(BIOS_KEYS)
      for (const [key, text] of Object.entries(value as Record<string, string>)) {
        if (!allowed.has(key)) throw xapiFault('INVALID_VALUE', key, 'Unknown key')
        if (text.length > 512) throw xapiFault('INVALID_VALUE', key, 'Value too long')
      }
      pool.db.update('VM', vm, { bios_strings: { ...GENERIC_BIOS_STRINGS, ...(value as Record<string, string>) } })
    },
  ],
]

/** The keys set_bios_strings accepts (the datamodel's doc) and xapi_globs.generic_bios_strings. */
const BIOS_KEYS = [
  'bios-vendor',
  'bios-version',
  'system-manufacturer',
  'system-product-name',
  'system-version',
  'system-serial-number',
  'enclosure-asset-tag',
]
const GENERIC_BIOS_STRINGS: Readonly<Record<string, string>> = {
  'bios-vendor': 'Xen',
  'bios-version': '',
  'system-manufacturer': 'Xen',
  'system-product-name': 'HVM domU',
  'system-version': '',
  'system-serial-number': '',
  'enclosure-asset-tag': '',
  'hp-rombios': '',
  'oem-1': 'Xen',
  'oem-2': 'MS_VM_CERT/SHA1/bdbeb6e0a816d43fa6d3fe8aaef04c2bad9d3e3d',
}

export function addVmSettings(registry: MethodRegistry): void {
  for (const [name, type, set] of SETTERS) {
    registry.add({
      name: `VM.${name}`,
      params: ['string', type],
      handler: ({ pool }, [vm, value]) => {
        pool.db.get('VM', vm as string)
        set(pool, vm as string, value as StoredValue)
        return ''
      },
    })
  }
  registry.add({
    name: 'VM.set_memory_limits',
    params: ['string', 'int', 'int', 'int', 'int'],
    async: true,
    handler: ({ pool }, [vm, staticMin, staticMax, dynamicMin, dynamicMax]) => {
      assertVmOperation(pool, vm as string, 'changing_memory_limits', ['Halted'])
      setMemory(pool, vm as string, {
        memory_static_min: staticMin as number,
        memory_static_max: staticMax as number,
        memory_dynamic_min: dynamicMin as number,
        memory_dynamic_max: dynamicMax as number,
        memory_target: dynamicMin as number,
      })
      return ''
    },
  })
  for (const [range, op, states] of [
    ['static', 'changing_static_range', ['Halted']],
    ['dynamic', 'changing_dynamic_range', ['Halted', 'Running']],
  ] as const) {
    registry.add({
      name: `VM.set_memory_${range}_range`,
      params: ['string', 'int', 'int'],
      async: true,
      handler: ({ pool }, [vm, min, max]) => {
        assertVmOperation(pool, vm as string, op, states)
        setMemory(pool, vm as string, {
          [`memory_${range}_min`]: min as number,
          [`memory_${range}_max`]: max as number,
          ...(range === 'dynamic' ? { memory_target: min as number } : {}),
        })
        return ''
      },
    })
  }
  registry.add({
    name: 'VM.set_suspend_VDI',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [vm, vdi]) => {
      const state = pool.db.get('VM', vm as string)['power_state'] as string
      if (state !== 'Suspended') throw xapiFault('VM_BAD_POWER_STATE', vm as string, 'suspended', state.toLowerCase())
      const record = pool.db.get('VDI', vdi as string)
      if (record['type'] === 'cbt_metadata') throw xapiFault('VDI_INCOMPATIBLE_TYPE', vm as string, 'cbt_metadata')
      const current = pool.db.get('VM', vm as string)['suspend_VDI'] as string
      // XAPI accepts only a replacement with the same content (checksums compared): the lab's disks
      // are identical exactly when they share every block, which only the same VDI guarantees.
      if (current !== vdi)
        throw xapiFault(
          'SUSPEND_VDI_REPLACEMENT_IS_NOT_IDENTICAL',
          `${pool.isNull(current) ? '' : (pool.db.get('VDI', current)['uuid'] as string)} : `,
          `${record['uuid'] as string} : `,
        )
      return ''
    },
  })
  // VM.assert_operation_valid / update_allowed_operations (Xapi_vm_lifecycle): the same checks
  // every operation runs; allowed_operations is recomputed on every read already, so the
  // update is a `mod` event clients see.
  registry.add({
    name: 'VM.set_appliance',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [vm, appliance]) => {
      const record = pool.db.get('VM', vm as string)
      if (record['is_control_domain'] === true || record['is_a_template'] === true || record['is_a_snapshot'] === true)
        throw xapiFault(
          'OPERATION_NOT_ALLOWED',
          'Control domains, templates and snapshots cannot be assigned to appliances.',
        )
      // the lab has no VM_appliance objects: only the null reference exists
      if (!pool.isNull(appliance)) throw xapiFault('HANDLE_INVALID', 'VM_appliance', appliance as string)
      pool.db.update('VM', vm as string, { appliance: NULL_REF })
      return ''
    },
  })
  registry.add({
    name: 'VM.set_snapshot_schedule',
    params: ['string', 'string'],
    handler: ({ pool }, [vm, schedule]) => {
      pool.db.get('VM', vm as string)
      if (!pool.isNull(schedule)) throw xapiFault('INVALID_VALUE', schedule as string)
      pool.db.update('VM', vm as string, { snapshot_schedule: NULL_REF })
      return ''
    },
  })
}
