/**
 * PIF and network messages as xapi_pif.ml / xapi_network.ml carry them out on the database: IP
 * configuration (checked as XAPI checks it), the primary address type, PIF properties (only
 * `gro`, `on` or `off`), plugging a PIF (which NBD's address list follows), forgetting a PIF
 * record, and network.pool_introduce (a network record in the database only).
 */
import { isIPv4, isIPv6 } from 'node:net'
import { xapiFault } from '../fault.js'
import type { LabPool } from '../pool.js'
import type { MethodRegistry } from './registry.js'
import { enumValue } from './vm-settings.js'

function pif(pool: LabPool, ref: unknown): Readonly<Record<string, unknown>> {
  return pool.db.get('PIF', ref as string)
}

/** xapi_pif: a PIF that is not managed by xapi cannot be reconfigured or plugged. */
function assertManaged(pool: LabPool, ref: string): void {
  if (pif(pool, ref)['managed'] === false) throw xapiFault('PIF_UNMANAGED', ref)
}

export function addNetworkMethods(registry: MethodRegistry): void {
  registry.add({
    name: 'PIF.reconfigure_ip',
    params: ['string', 'string', 'string', 'string', 'string', 'string'],
    async: true,
    handler: ({ pool }, [ref, mode, ip, netmask, gateway, dns]) => {
      assertManaged(pool, ref as string)
      const wanted = enumValue('ip_configuration_mode', ['None', 'DHCP', 'Static'], mode as string)
      if (wanted === 'Static') {
        if (!isIPv4(ip as string)) throw xapiFault('INVALID_IP_ADDRESS_SPECIFIED', 'IP')
        if (!isIPv4(netmask as string)) throw xapiFault('INVALID_IP_ADDRESS_SPECIFIED', 'netmask')
        if (gateway !== '' && !isIPv4(gateway as string)) throw xapiFault('INVALID_IP_ADDRESS_SPECIFIED', 'gateway')
      }
      const isStatic = wanted === 'Static'
      pool.db.update('PIF', ref as string, {
        ip_configuration_mode: wanted,
        IP: isStatic ? (ip as string) : '',
        netmask: isStatic ? (netmask as string) : '',
        gateway: isStatic ? (gateway as string) : '',
        DNS: isStatic ? (dns as string) : '',
      })
      return ''
    },
  })
  registry.add({
    name: 'PIF.reconfigure_ipv6',
    params: ['string', 'string', 'string', 'string', 'string'],
    async: true,
    handler: ({ pool }, [ref, mode, ipv6, gateway]) => {
      assertManaged(pool, ref as string)
      const wanted = enumValue('ipv6_configuration_mode', ['None', 'DHCP', 'Static', 'Autoconf'], mode as string)
      if (wanted === 'Static') {
        const [address = '', prefix] = (ipv6 as string).split('/')
        if (!isIPv6(address) || prefix === undefined) throw xapiFault('INVALID_IP_ADDRESS_SPECIFIED', 'IPv6')
        if (gateway !== '' && !isIPv6(gateway as string)) throw xapiFault('INVALID_IP_ADDRESS_SPECIFIED', 'gateway')
      }
      pool.db.update('PIF', ref as string, {
        ipv6_configuration_mode: wanted,
        IPv6: wanted === 'Static' ? [ipv6 as string] : [],
        ipv6_gateway: wanted === 'Static' ? (gateway as string) : '',
      })
      return ''
    },
  })
  registry.add({
    name: 'PIF.set_primary_address_type',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [ref, value]) => {
      pif(pool, ref)
      pool.db.update('PIF', ref as string, {
        primary_address_type: enumValue('primary_address_type', ['IPv4', 'IPv6'], value as string),
      })
      return ''
    },
  })
  registry.add({
    name: 'PIF.set_property',
    params: ['string', 'string', 'string'],
    async: true,
    handler: ({ pool }, [ref, name, value]) => {
      const properties = pif(pool, ref)['properties'] as Record<string, string>
      // xapi_pif.set_property: the one known property is gro, on or off
      if (name !== 'gro') throw xapiFault('INVALID_VALUE', 'properties', name as string)
      if (value !== 'on' && value !== 'off') throw xapiFault('INVALID_VALUE', 'gro', value as string)
      pool.db.update('PIF', ref as string, { properties: { ...properties, gro: value } })
      return ''
    },
  })
  for (const [message, attach] of [
    ['plug', true],
    ['unplug', false],
  ] as const) {
    registry.add({
      name: `PIF.${message}`,
      params: ['string'],
      async: true,
      handler: ({ pool }, [ref]) => {
        assertManaged(pool, ref as string)
        const record = pif(pool, ref)
        if (!attach) {
          if (record['disallow_unplug'] === true) throw xapiFault('PIF_DOES_NOT_ALLOW_UNPLUG', ref as string)
          if (record['management'] === true) throw xapiFault('PIF_IS_MANAGEMENT_INTERFACE', ref as string)
        }
        pool.db.update('PIF', ref as string, { currently_attached: attach })
        return ''
      },
    })
  }
  registry.add({
    name: 'PIF.db_forget',
    params: ['string'],
    async: true,
    handler: ({ pool }, [ref]) => {
      pif(pool, ref)
      pool.db.destroy('PIF', ref as string)
      return ''
    },
  })
  registry.add({
    name: 'network.pool_introduce',
    params: ['string', 'string', 'int', 'map', 'string', 'bool', 'set'],
    async: true,
    handler: ({ pool }, [name, description, mtu, otherConfig, bridge, managed, purpose]) =>
      pool.db.create('network', {
        name_label: name as string,
        name_description: description as string,
        MTU: mtu as number,
        other_config: otherConfig as Record<string, string>,
        bridge: bridge as string,
        managed: managed as boolean,
        purpose: (purpose as readonly string[]).map(p => enumValue('network_purpose', ['nbd', 'insecure_nbd'], p)),
      }),
  })
}
