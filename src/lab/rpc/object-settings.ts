/**
 * Declared setters and small messages of the other classes, as xapi carries them out: VDI's
 * SM-facing setters (plain database writes in xapi_vdi.ml), VBD media and mode, VIF locking and
 * allowed addresses (addresses checked as xapi_vif_helpers does), hotplug of VIFs, the network's
 * default locking mode, task status, host enable/disable, VM pause/reboot, event.get_current_id.
 */
import { isIPv4, isIPv6 } from 'node:net'
import { NULL_REF } from '../db/database.js'
import { xapiFault } from '../fault.js'
import type { StoredValue } from '../db/schema.js'
import type { LabPool } from '../pool.js'
import { formatXapiDate, WireDateTime } from '../wire/values.js'
import type { MethodRegistry, ParamType } from './registry.js'
import { assertVmOperation } from './vm-checks.js'
import { enumValue } from './vm-settings.js'

function simpleSetter(
  registry: MethodRegistry,
  cls: string,
  field: string,
  type: ParamType,
  convert: (value: StoredValue) => StoredValue = v => v,
): void {
  registry.add({
    name: `${cls}.set_${field}`,
    params: ['string', type],
    handler: ({ pool }, [ref, value]) => {
      pool.db.get(cls, ref as string)
      const stored = value instanceof Date ? formatXapiDate(value) : (value as StoredValue)
      pool.db.update(cls, ref as string, { [field]: convert(stored) })
      return ''
    },
  })
}

function assertRunning(pool: LabPool, vm: string): void {
  const state = pool.db.get('VM', vm)['power_state'] as string
  if (state !== 'Running') throw xapiFault('VM_BAD_POWER_STATE', vm, 'running', state.toLowerCase())
}

/** xapi_vif_helpers: every allowed address must be a plain address of the family. */
function checkAddress(family: 4 | 6, address: string): void {
  if (!(family === 4 ? isIPv4(address) : isIPv6(address))) throw xapiFault('INVALID_IP_ADDRESS_SPECIFIED', address)
}

function addVdiSettings(registry: MethodRegistry): void {
  // SM's setters: database writes, no checks beyond the types (xapi_vdi.ml)
  for (const [field, type] of [
    ['managed', 'bool'],
    ['sharable', 'bool'],
    ['read_only', 'bool'],
    ['missing', 'bool'],
    ['virtual_size', 'int'],
    ['physical_utilisation', 'int'],
    ['is_a_snapshot', 'bool'],
    ['snapshot_of', 'string'],
    ['snapshot_time', 'datetime'],
    ['metadata_of_pool', 'string'],
    ['allow_caching', 'bool'],
    ['cbt_enabled', 'bool'],
  ] as const)
    simpleSetter(registry, 'VDI', field, type)
  registry.add({
    name: 'VDI.set_on_boot',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [vdi, value]) => {
      pool.db.get('VDI', vdi as string)
      const onBoot = enumValue('on_boot', ['reset', 'persist'], value as string)
      const attached = pool.db
        .related('VBD', 'VDI', vdi as string)
        .some(vbd => pool.db.get('VBD', vbd)['currently_attached'] === true)
      if (attached) throw xapiFault('VDI_IN_USE', vdi as string, 'set_on_boot')
      pool.db.update('VDI', vdi as string, { on_boot: onBoot })
      return ''
    },
  })
  for (const [message, enabled] of [
    ['enable_cbt', true],
    ['disable_cbt', false],
  ] as const) {
    registry.add({
      name: `VDI.${message}`,
      params: ['string'],
      async: true,
      handler: ({ pool }, [vdi]) => {
        const record = pool.db.get('VDI', vdi as string)
        if (!['user', 'system'].includes(record['type'] as string))
          throw xapiFault('VDI_INCOMPATIBLE_TYPE', vdi as string, record['type'] as string)
        if (record['on_boot'] === 'reset') throw xapiFault('VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION')
        pool.db.update('VDI', vdi as string, { cbt_enabled: enabled })
        return ''
      },
    })
  }
  registry.add({
    name: 'VDI.update',
    params: ['string'],
    async: true,
    handler: ({ pool }, [vdi]) => {
      pool.db.get('VDI', vdi as string)
      pool.refreshVdi(vdi as string)
      return ''
    },
  })
}

function addSrSettings(registry: MethodRegistry): void {
  simpleSetter(registry, 'SR', 'shared', 'bool')
  simpleSetter(registry, 'SR', 'virtual_allocation', 'int')
  simpleSetter(registry, 'SR', 'physical_utilisation', 'int')
  registry.add({
    name: 'SR.update',
    params: ['string'],
    async: true,
    handler: ({ pool }, [sr]) => {
      pool.db.get('SR', sr as string)
      pool.refreshSr(sr as string)
      return ''
    },
  })
  registry.add({
    name: 'PBD.set_device_config',
    params: ['string', 'map'],
    async: true,
    handler: ({ pool }, [pbd, value]) => {
      pool.db.get('PBD', pbd as string)
      pool.db.update('PBD', pbd as string, { device_config: value as Record<string, string> })
      return ''
    },
  })
}

function addDeviceSettings(registry: MethodRegistry): void {
  registry.add({
    name: 'VBD.set_mode',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [vbd, value]) => {
      const record = pool.db.get('VBD', vbd as string)
      const mode = enumValue('vbd_mode', ['RO', 'RW'], value as string)
      const vm = record['VM'] as string
      const state = pool.db.get('VM', vm)['power_state'] as string
      if (state !== 'Halted') throw xapiFault('VM_BAD_POWER_STATE', vm, 'halted', state.toLowerCase())
      pool.db.update('VBD', vbd as string, { mode })
      return ''
    },
  })
  registry.add({
    name: 'VBD.eject',
    params: ['string'],
    async: true,
    handler: ({ pool }, [vbd]) => {
      const record = pool.db.get('VBD', vbd as string)
      if (record['type'] !== 'CD') throw xapiFault('VBD_NOT_REMOVABLE_MEDIA', vbd as string)
      if (record['empty'] === true) throw xapiFault('VBD_IS_EMPTY', vbd as string)
      pool.db.update('VBD', vbd as string, { empty: true, VDI: NULL_REF })
      return ''
    },
  })
  registry.add({
    name: 'VBD.insert',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [vbd, vdi]) => {
      const record = pool.db.get('VBD', vbd as string)
      pool.db.get('VDI', vdi as string)
      if (record['type'] !== 'CD') throw xapiFault('VBD_NOT_REMOVABLE_MEDIA', vbd as string)
      if (record['empty'] !== true) throw xapiFault('VBD_NOT_EMPTY', vbd as string)
      pool.db.update('VBD', vbd as string, { empty: false, VDI: vdi as string })
      return ''
    },
  })
  registry.add({
    name: 'VIF.set_locking_mode',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [vif, value]) => {
      pool.db.get('VIF', vif as string)
      const mode = enumValue('vif_locking_mode', ['network_default', 'locked', 'unlocked', 'disabled'], value as string)
      pool.db.update('VIF', vif as string, { locking_mode: mode })
      return ''
    },
  })
  for (const family of [4, 6] as const) {
    const field = `ipv${family}_allowed`
    const current = (pool: LabPool, vif: string): readonly string[] =>
      pool.db.get('VIF', vif)[field] as readonly string[]
    registry.add({
      name: `VIF.set_${field}`,
      params: ['string', 'set'],
      async: true,
      handler: ({ pool }, [vif, value]) => {
        current(pool, vif as string)
        for (const address of value as readonly string[]) checkAddress(family, address)
        pool.db.update('VIF', vif as string, { [field]: [...new Set(value as readonly string[])] })
        return ''
      },
    })
    registry.add({
      name: `VIF.add_${field}`,
      params: ['string', 'string'],
      async: true,
      handler: ({ pool }, [vif, value]) => {
        const set = current(pool, vif as string)
        checkAddress(family, value as string)
        if (!set.includes(value as string)) pool.db.update('VIF', vif as string, { [field]: [...set, value as string] })
        return ''
      },
    })
    registry.add({
      name: `VIF.remove_${field}`,
      params: ['string', 'string'],
      async: true,
      handler: ({ pool }, [vif, value]) => {
        const set = current(pool, vif as string)
        if (set.includes(value as string))
          pool.db.update('VIF', vif as string, { [field]: set.filter(a => a !== value) })
        return ''
      },
    })
  }
  for (const [message, attach] of [
    ['plug', true],
    ['unplug', false],
    ['unplug_force', false],
  ] as const) {
    registry.add({
      name: `VIF.${message}`,
      params: ['string'],
      async: true,
      handler: ({ pool }, [vif]) => {
        const record = pool.db.get('VIF', vif as string)
        assertRunning(pool, record['VM'] as string)
        if (record['currently_attached'] === attach)
          throw xapiFault(attach ? 'DEVICE_ALREADY_ATTACHED' : 'DEVICE_ALREADY_DETACHED', vif as string)
        pool.db.update('VIF', vif as string, { currently_attached: attach })
        return ''
      },
    })
  }
  for (const family of [4, 6] as const) {
    registry.add({
      name: `VIF.configure_ipv${family}`,
      params: ['string', 'string', 'string', 'string'],
      defaulted: 2,
      async: true,
      handler: ({ pool }, [vif, mode, address, gateway]) => {
        pool.db.get('VIF', vif as string)
        const wanted = enumValue(`vif_ipv${family}_configuration_mode`, ['None', 'Static'], mode as string)
        const cidr = (address as string | undefined) ?? ''
        const via = (gateway as string | undefined) ?? ''
        if (wanted === 'Static') {
          // xapi_vif_helpers: an address in CIDR form, a gateway of the same family when given
          const [ip = '', prefix] = cidr.split('/')
          if (prefix === undefined || !/^\d+$/.test(prefix)) throw xapiFault('INVALID_IP_ADDRESS_SPECIFIED', 'address')
          checkAddress(family, ip)
          if (via !== '') checkAddress(family, via)
        }
        const isStatic = wanted === 'Static'
        pool.db.update('VIF', vif as string, {
          [`ipv${family}_configuration_mode`]: wanted,
          [`ipv${family}_addresses`]: isStatic ? [cidr] : [],
          [`ipv${family}_gateway`]: isStatic ? via : '',
        })
        return ''
      },
    })
  }
  registry.add({
    name: 'VIF.move',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [vif, network]) => {
      pool.db.get('VIF', vif as string)
      pool.db.get('network', network as string)
      pool.db.update('VIF', vif as string, { network: network as string })
      return ''
    },
  })
  registry.add({
    name: 'network.set_default_locking_mode',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [network, value]) => {
      pool.db.get('network', network as string)
      const mode = enumValue('network_default_locking_mode', ['unlocked', 'disabled'], value as string)
      pool.db.update('network', network as string, { default_locking_mode: mode })
      return ''
    },
  })
}

function addVmPower(registry: MethodRegistry): void {
  const transition = (
    name: string,
    allowed: readonly ('Running' | 'Paused')[],
    apply: (pool: LabPool, vm: string) => void,
  ): void =>
    registry.add({
      name: `VM.${name}`,
      params: ['string'],
      async: true,
      handler: ({ pool }, [vm]) => {
        assertVmOperation(pool, vm as string, name, allowed)
        apply(pool, vm as string)
        return ''
      },
    })
  transition('pause', ['Running'], (pool, vm) => pool.db.update('VM', vm, { power_state: 'Paused' }))
  transition('unpause', ['Paused'], (pool, vm) => pool.db.update('VM', vm, { power_state: 'Running' }))
  // A reboot keeps the VM running on its host with a new domain; the guest boots again.
  const reboot = (pool: LabPool, vm: string): void => {
    pool.guests.halted(vm)
    const domid = (pool.db.get('VM', vm)['domid'] as number) + 1
    pool.db.update('VM', vm, { power_state: 'Running', domid })
    pool.guests.started(vm)
  }
  transition('clean_reboot', ['Running'], reboot)
  transition('hard_reboot', ['Running', 'Paused'], reboot)
}

function addHostAndPool(registry: MethodRegistry): void {
  for (const [message, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    registry.add({
      name: `host.${message}`,
      params: ['string'],
      async: true,
      handler: ({ pool }, [host]) => {
        pool.db.get('host', host as string)
        pool.db.update('host', host as string, { enabled })
        return ''
      },
    })
  }
  registry.add({
    name: 'host.set_display',
    params: ['string', 'string'],
    handler: ({ pool }, [host, value]) => {
      pool.db.get('host', host as string)
      const display = enumValue(
        'host_display',
        ['enabled', 'disable_on_reboot', 'disabled', 'enable_on_reboot'],
        value as string,
      )
      pool.db.update('host', host as string, { display })
      return ''
    },
  })
  simpleSetter(registry, 'host', 'ssl_legacy', 'bool')
  // Pool.enable_ssl_legacy / disable_ssl_legacy: Host.set_ssl_legacy on every host
  for (const [message, value] of [
    ['enable_ssl_legacy', true],
    ['disable_ssl_legacy', false],
  ] as const) {
    registry.add({
      name: `pool.${message}`,
      params: ['string'],
      async: true,
      handler: ({ pool }, [self]) => {
        pool.db.get('pool', self as string)
        for (const [host] of [...pool.db.all('host')]) pool.db.update('host', host, { ssl_legacy: value })
        return ''
      },
    })
  }
  registry.add({
    name: 'host.list_methods',
    params: [],
    handler: () =>
      registry
        .names()
        .filter(name => !name.startsWith('system.'))
        .sort(),
  })
  // a lab host is never in emergency mode (it would answer nothing but the emergency calls)
  registry.add({ name: 'host.is_in_emergency_mode', params: [], handler: () => false })
  registry.add({
    name: 'host.compute_memory_overhead',
    params: ['string'],
    async: true,
    handler: ({ pool }, [host]) => pool.db.get('host', host as string)['memory_overhead'] as number,
  })
  registry.add({
    name: 'host.get_server_localtime',
    params: ['string'],
    handler: ({ pool }, [host]) => {
      pool.db.get('host', host as string)
      // the lab's hosts keep UTC as their local time
      return new WireDateTime(formatXapiDate(new Date()).replace(/Z$/, ''))
    },
  })
  // No XAPI extension is installed on a lab host: has_extension says so, as xapi does for an absent one.
  registry.add({
    name: 'host.has_extension',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [host]) => {
      pool.db.get('host', host as string)
      return false
    },
  })
  registry.add({
    name: 'pool.has_extension',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [self]) => {
      pool.db.get('pool', self as string)
      return false
    },
  })
  registry.add({
    name: 'pool.set_igmp_snooping_enabled',
    params: ['string', 'bool'],
    async: true,
    handler: ({ pool }, [self, value]) => {
      pool.db.get('pool', self as string)
      pool.db.update('pool', self as string, { igmp_snooping_enabled: value as boolean })
      return ''
    },
  })
  registry.add({
    name: 'pool.add_to_guest_agent_config',
    params: ['string', 'string', 'string'],
    async: true,
    handler: ({ pool }, [self, key, value]) => {
      const config = pool.db.get('pool', self as string)['guest_agent_config'] as Record<string, string>
      pool.db.update('pool', self as string, { guest_agent_config: { ...config, [key as string]: value as string } })
      return ''
    },
  })
  registry.add({
    name: 'pool.remove_from_guest_agent_config',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [self, key]) => {
      const config = { ...(pool.db.get('pool', self as string)['guest_agent_config'] as Record<string, string>) }
      delete config[key as string]
      pool.db.update('pool', self as string, { guest_agent_config: config })
      return ''
    },
  })
}

function addTaskAndEvent(registry: MethodRegistry): void {
  registry.add({
    name: 'task.set_status',
    params: ['string', 'string'],
    handler: ({ pool }, [task, value]) => {
      pool.db.get('task', task as string)
      const status = enumValue(
        'task_status_type',
        ['pending', 'success', 'failure', 'cancelling', 'cancelled'],
        value as string,
      )
      pool.db.update('task', task as string, {
        status,
        ...(status === 'pending' || status === 'cancelling' ? {} : { finished: formatXapiDate(new Date()) }),
      })
      return ''
    },
  })
  registry.add({
    name: 'event.get_current_id',
    params: [],
    handler: ({ pool }) => pool.db.generation,
  })
}

export function addObjectSettings(registry: MethodRegistry): void {
  addVdiSettings(registry)
  addSrSettings(registry)
  addDeviceSettings(registry)
  addVmPower(registry)
  addHostAndPool(registry)
  addTaskAndEvent(registry)
}
