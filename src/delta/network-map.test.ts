import { describe, expect, it } from 'vitest'
import { mapNetwork, type TargetNetwork } from './network-map.js'

const net = (uuid: string, name: string, vlan: number | undefined, management = false): TargetNetwork => ({
  ref: `ref-${uuid}`,
  uuid,
  name,
  vlan,
  management,
})
const targets = [
  net('t-mgmt', 'Pool-wide network', -1, true),
  net('t-vlan10a', 'storage', 10),
  net('t-vlan10b', 'backend', 10),
  net('t-internal', 'private', undefined),
]

describe('mapNetwork', () => {
  it('follows the explicit map first', () => {
    expect(mapNetwork({ uuid: 's', name: 'backend', vlan: 10 }, targets, { s: 't-internal' })).toMatchObject({
      match: 'map',
      network: { uuid: 't-internal' },
    })
  })

  it('keeps the same network within one pool', () => {
    expect(mapNetwork({ uuid: 't-vlan10b', name: 'x', vlan: 99 }, targets, {})?.match).toBe('uuid')
  })

  it('prefers same VLAN and name, then same VLAN', () => {
    expect(mapNetwork({ uuid: 's', name: 'backend', vlan: 10 }, targets, {})).toMatchObject({
      match: 'vlan-and-name',
      network: { uuid: 't-vlan10b' },
    })
    expect(mapNetwork({ uuid: 's', name: 'other', vlan: 10 }, targets, {})).toMatchObject({
      match: 'vlan',
      network: { uuid: 't-vlan10a' },
    })
  })

  it('falls back to the management network, never to a network without PIFs', () => {
    expect(mapNetwork({ uuid: 's', name: 'private', vlan: 42 }, targets, {})).toMatchObject({
      match: 'default',
      network: { uuid: 't-mgmt' },
    })
    expect(
      mapNetwork({ uuid: 's', name: 'x', vlan: undefined }, [net('only-internal', 'x', undefined)], {}),
    ).toBeUndefined()
  })

  it('ignores a map entry naming a network the target does not have', () => {
    expect(mapNetwork({ uuid: 's', name: 'storage', vlan: 10 }, targets, { s: 'gone' })?.match).toBe('vlan-and-name')
  })
})
