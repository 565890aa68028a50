import { describe, expect, it } from 'vitest'
import { networkInventoryOf, srInventoryOf, vmInventoryOf } from './inventory.js'
import { asRef, type Ref } from './types.js'

const NULL = asRef<'VDI'>('OpaqueRef:NULL')
const GiB = 1024 ** 3

function vm(
  uuid: string,
  name: string,
  vbds: string[],
  flags: Partial<Record<'template' | 'snapshot' | 'dom0', boolean>> = {},
) {
  return {
    uuid,
    name_label: name,
    power_state: 'Running',
    tags: ['prod'],
    VBDs: vbds.map(ref => asRef<'VBD'>(`OpaqueRef:${ref}`)),
    is_a_template: flags.template === true,
    is_a_snapshot: flags.snapshot === true,
    is_control_domain: flags.dom0 === true,
  }
}

describe('vmInventoryOf', () => {
  it('lists VMs by name with their disks counted and sized, CD drives and empty drives left out', () => {
    const vms = new Map([
      [asRef<'VM'>('OpaqueRef:v1'), vm('u-web', 'web', ['b1', 'b2', 'b3', 'b4'])],
      [asRef<'VM'>('OpaqueRef:v2'), vm('u-db', 'db', [])],
      [asRef<'VM'>('OpaqueRef:v3'), vm('u-tpl', 'Debian', [], { template: true })],
      [asRef<'VM'>('OpaqueRef:v4'), vm('u-snap', 'web snap', ['b1'], { snapshot: true })],
      [asRef<'VM'>('OpaqueRef:v5'), vm('u-dom0', 'Control domain', [], { dom0: true })],
    ])
    const vbds = new Map<Ref<'VBD'>, { type: 'Disk' | 'CD' | 'Floppy'; VDI: Ref<'VDI'> }>([
      [asRef('OpaqueRef:b1'), { type: 'Disk', VDI: asRef('OpaqueRef:d1') }],
      [asRef('OpaqueRef:b2'), { type: 'Disk', VDI: asRef('OpaqueRef:d2') }],
      [asRef('OpaqueRef:b3'), { type: 'CD', VDI: asRef('OpaqueRef:iso') }],
      [asRef('OpaqueRef:b4'), { type: 'Disk', VDI: NULL }],
    ])
    const vdis = new Map([
      [asRef<'VDI'>('OpaqueRef:d1'), { virtual_size: 16 * GiB }],
      [asRef<'VDI'>('OpaqueRef:d2'), { virtual_size: 4 * GiB }],
      [asRef<'VDI'>('OpaqueRef:iso'), { virtual_size: GiB }],
    ])
    expect(vmInventoryOf(vms, vbds, vdis)).toEqual([
      { uuid: 'u-db', name: 'db', powerState: 'Running', tags: ['prod'], disks: 0, diskBytes: 0 },
      { uuid: 'u-web', name: 'web', powerState: 'Running', tags: ['prod'], disks: 2, diskBytes: 20 * GiB },
    ])
  })
})

describe('srInventoryOf', () => {
  it('gives size, free space, sharing and the default SR', () => {
    const sr = (uuid: string, name: string, used: number, shared: boolean, contentType = 'user') => ({
      uuid,
      name_label: name,
      type: shared ? 'nfs' : 'ext',
      content_type: contentType,
      shared,
      physical_size: 100 * GiB,
      physical_utilisation: used,
    })
    const srs = new Map([
      [asRef<'SR'>('OpaqueRef:s1'), sr('u-local', 'Local storage', 30 * GiB, false)],
      [asRef<'SR'>('OpaqueRef:s2'), sr('u-nfs', 'NFS', 0, true)],
      [asRef<'SR'>('OpaqueRef:s3'), sr('u-iso', 'ISOs', 200 * GiB, true, 'iso')],
    ])
    expect(srInventoryOf(srs, { default_SR: asRef('OpaqueRef:s2') })).toEqual([
      {
        uuid: 'u-iso',
        name: 'ISOs',
        type: 'nfs',
        contentType: 'iso',
        shared: true,
        size: 100 * GiB,
        free: 0,
        default: false,
      },
      {
        uuid: 'u-local',
        name: 'Local storage',
        type: 'ext',
        contentType: 'user',
        shared: false,
        size: 100 * GiB,
        free: 70 * GiB,
        default: false,
      },
      {
        uuid: 'u-nfs',
        name: 'NFS',
        type: 'nfs',
        contentType: 'user',
        shared: true,
        size: 100 * GiB,
        free: 100 * GiB,
        default: true,
      },
    ])
    expect(srInventoryOf(srs, undefined).some(item => item.default)).toBe(false)
  })
})

describe('networkInventoryOf', () => {
  it("takes the VLAN from the network's PIFs, none for an untagged or internal network", () => {
    const network = (uuid: string, name: string, pifs: string[]) => ({
      uuid,
      name_label: name,
      bridge: `xenbr-${name}`,
      MTU: 1500,
      PIFs: pifs.map(ref => asRef<'PIF'>(`OpaqueRef:${ref}`)),
    })
    const networks = new Map([
      [asRef<'network'>('OpaqueRef:n1'), network('u-lan', 'lan', ['p1'])],
      [asRef<'network'>('OpaqueRef:n2'), network('u-vlan', 'dmz', ['p2', 'p3'])],
      [asRef<'network'>('OpaqueRef:n3'), network('u-int', 'internal', [])],
    ])
    const pifs = new Map([
      [asRef<'PIF'>('OpaqueRef:p1'), { VLAN: -1 }],
      [asRef<'PIF'>('OpaqueRef:p2'), { VLAN: 42 }],
      [asRef<'PIF'>('OpaqueRef:p3'), { VLAN: 42 }],
    ])
    expect(networkInventoryOf(networks, pifs)).toEqual([
      { uuid: 'u-vlan', name: 'dmz', bridge: 'xenbr-dmz', vlan: 42, mtu: 1500 },
      { uuid: 'u-int', name: 'internal', bridge: 'xenbr-internal', mtu: 1500 },
      { uuid: 'u-lan', name: 'lan', bridge: 'xenbr-lan', mtu: 1500 },
    ])
  })
})
