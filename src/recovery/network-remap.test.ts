import { describe, expect, it } from 'vitest'
import { parseNetworkPair, resolveNetworkRemap } from './network-remap.js'

const networks = new Map([
  ['OpaqueRef:lan', { uuid: 'net-lan', name_label: 'LAN' }],
  ['OpaqueRef:dr', { uuid: 'net-dr', name_label: 'DR LAN' }],
  ['OpaqueRef:dmz1', { uuid: 'net-dmz1', name_label: 'DMZ' }],
  ['OpaqueRef:dmz2', { uuid: 'net-dmz2', name_label: 'DMZ' }],
])

const code = (c: string): Error => expect.objectContaining({ code: c }) as Error

describe('failover network map', () => {
  it('parses SRC=DST at the first =', () => {
    expect(parseNetworkPair('LAN=DR LAN')).toEqual(['LAN', 'DR LAN'])
    expect(parseNetworkPair('a=b=c')).toEqual(['a', 'b=c'])
    for (const bad of ['LAN', '=DR', 'LAN=']) expect(() => parseNetworkPair(bad), bad).toThrow(code('BAD_NETWORK_MAP'))
  })

  it("maps target networks by uuid or name, and source networks through the job's map", () => {
    expect(resolveNetworkRemap([['LAN', 'net-dr']], networks, {})).toEqual(new Map([['OpaqueRef:lan', 'OpaqueRef:dr']]))
    // the source network (gone with its pool) is known only by the job's map to net-lan
    expect(resolveNetworkRemap([['src-net-1', 'DR LAN']], networks, { 'src-net-1': 'net-lan' })).toEqual(
      new Map([['OpaqueRef:lan', 'OpaqueRef:dr']]),
    )
    // a name shared by two source-side networks moves both
    expect(resolveNetworkRemap([['DMZ', 'LAN']], networks, {})).toEqual(
      new Map([
        ['OpaqueRef:dmz1', 'OpaqueRef:lan'],
        ['OpaqueRef:dmz2', 'OpaqueRef:lan'],
      ]),
    )
  })

  it('refuses an unknown or ambiguous destination, an unknown source and a network mapped twice', () => {
    expect(() => resolveNetworkRemap([['LAN', 'nowhere']], networks, {})).toThrow(code('NETWORK_NOT_FOUND'))
    expect(() => resolveNetworkRemap([['nowhere', 'LAN']], networks, {})).toThrow(code('NETWORK_NOT_FOUND'))
    expect(() => resolveNetworkRemap([['LAN', 'DMZ']], networks, {})).toThrow(code('NETWORK_AMBIGUOUS'))
    expect(() =>
      resolveNetworkRemap(
        [
          ['LAN', 'DR LAN'],
          ['net-lan', 'net-dmz1'],
        ],
        networks,
        {},
      ),
    ).toThrow(code('NETWORK_MAP_CONFLICT'))
  })
})
