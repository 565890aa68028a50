/** VBD, VIF and network create/destroy messages. */
import { xapiFault } from '../fault.js'
import type { MethodRegistry } from './registry.js'
import { readStruct, stringMember } from './struct-args.js'
import { createVbd, createVif, setVbdAttached } from './devices.js'

export function addDeviceMethods(registry: MethodRegistry): void {
  registry.add({
    name: 'VBD.create',
    params: ['struct'],
    async: true,
    handler: ({ pool }, [struct]) => {
      const fields = readStruct(
        struct!,
        [
          ['VM', 'string'],
          ['VDI', 'string'],
          ['userdevice', 'string'],
          ['bootable', 'bool'],
          ['mode', 'string'],
          ['type', 'string'],
          ['empty', 'bool'],
          ['other_config', 'map'],
          ['qos_algorithm_type', 'string'],
          ['qos_algorithm_params', 'map'],
        ],
        [
          ['device', 'string'],
          ['unpluggable', 'bool'],
          ['currently_attached', 'bool'],
        ],
      )
      // Enums are matched case-insensitively on input and stored as the datamodel spells them.
      fields['mode'] = stringMember(fields, 'mode').toUpperCase()
      const type = stringMember(fields, 'type').toLowerCase()
      fields['type'] = type === 'cd' ? 'CD' : type === 'floppy' ? 'Floppy' : 'Disk'
      return createVbd(pool, fields)
    },
  })
  registry.add({
    name: 'VBD.destroy',
    params: ['string'],
    async: true,
    handler: ({ pool }, [vbd]) => {
      if (pool.db.get('VBD', vbd as string)['currently_attached'] === true)
        throw xapiFault('OPERATION_NOT_ALLOWED', 'VBD currently attached to a running VM')
      pool.db.destroy('VBD', vbd as string)
      return ''
    },
  })
  for (const [message, attach] of [
    ['plug', true],
    ['unplug', false],
    ['unplug_force', false],
    // deprecated: "functionally equivalent with unplug_force"
    ['unplug_force_no_safety_check', false],
  ] as const) {
    registry.add({
      name: `VBD.${message}`,
      params: ['string'],
      async: true,
      handler: ({ pool }, [vbd]) => {
        const vm = pool.db.get('VBD', vbd as string)['VM'] as string
        const state = pool.db.get('VM', vm)['power_state'] as string
        if (state !== 'Running') throw xapiFault('VM_BAD_POWER_STATE', vm, 'running', state.toLowerCase())
        if (pool.db.get('VBD', vbd as string)['currently_attached'] === attach) {
          throw xapiFault(attach ? 'DEVICE_ALREADY_ATTACHED' : 'DEVICE_ALREADY_DETACHED', vbd as string)
        }
        setVbdAttached(pool, vbd as string, attach)
        return ''
      },
    })
  }
  registry.add({
    name: 'VIF.create',
    params: ['struct'],
    async: true,
    handler: ({ pool }, [struct]) => {
      const fields = readStruct(
        struct!,
        [
          ['device', 'string'],
          ['network', 'string'],
          ['VM', 'string'],
          ['MAC', 'string'],
          ['MTU', 'int'],
          ['other_config', 'map'],
          ['qos_algorithm_type', 'string'],
          ['qos_algorithm_params', 'map'],
        ],
        [
          ['currently_attached', 'bool'],
          ['locking_mode', 'string'],
          ['ipv4_allowed', 'set'],
          ['ipv6_allowed', 'set'],
        ],
      )
      return createVif(pool, fields)
    },
  })
  registry.add({
    name: 'VIF.destroy',
    params: ['string'],
    async: true,
    handler: ({ pool }, [vif]) => {
      if (pool.db.get('VIF', vif as string)['currently_attached'] === true)
        throw xapiFault('OPERATION_NOT_ALLOWED', 'VIF currently attached to a running VM')
      pool.db.destroy('VIF', vif as string)
      return ''
    },
  })
  let bridges = 0
  registry.add({
    name: 'network.create',
    params: ['struct'],
    async: true,
    handler: ({ pool }, [struct]) => {
      const fields = readStruct(
        struct!,
        [
          ['name_label', 'string'],
          ['name_description', 'string'],
          ['other_config', 'map'],
        ],
        [
          ['MTU', 'int'],
          ['tags', 'set'],
          ['bridge', 'string'],
          ['managed', 'bool'],
        ],
      )
      return pool.db.create('network', { bridge: `xapi${bridges++}`, ...fields })
    },
  })
  registry.add({
    name: 'network.destroy',
    params: ['string'],
    async: true,
    handler: ({ pool }, [network]) => {
      pool.db.get('network', network as string)
      if (pool.db.related('VIF', 'network', network as string).length > 0)
        throw xapiFault('NETWORK_CONTAINS_VIF', ...pool.db.related('VIF', 'network', network as string))
      if (pool.db.related('PIF', 'network', network as string).length > 0)
        throw xapiFault('NETWORK_CONTAINS_PIF', ...pool.db.related('PIF', 'network', network as string))
      pool.db.destroy('network', network as string)
      return ''
    },
  })
}
