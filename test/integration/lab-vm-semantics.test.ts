/**
 * VM/VDI/VBD/VIF semantics of reference §4.2–4.6 and §8.7–8.8 that replication depends on:
 * snapshots are templates with crash-consistent CoW disks and no blocked_operations, blocked
 * operations are refused before power states, VM.destroy leaves the VDIs, VM.create drops
 * blocked_operations, guest writes show in physical_utilisation and in the bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Lab } from '../../src/lab/start.js'
import { guestBlock } from '../../src/lab/storage/guest-data.js'
import { startTempLab } from '../helpers/lab.js'
import { failure, jsonCall, login, ok, VM_CREATE_RECORD } from './lab-rpc.js'

const MiB = 1024 * 1024
let lab: Lab
let url: string
let s: string

type Rec = Record<string, unknown>
const rec = (cls: string, ref: string): Promise<Rec> => ok<Rec>(url, `${cls}.get_record`, s, ref)
const vmNamed = async (name: string): Promise<string> => (await ok<string[]>(url, 'VM.get_by_name_label', s, name))[0]!
async function disksOf(vm: string): Promise<string[]> {
  const vbds = (await rec('VM', vm))['VBDs'] as string[]
  const out: string[] = []
  for (const vbd of vbds) out.push((await rec('VBD', vbd))['VDI'] as string)
  return out
}

beforeAll(async () => {
  lab = await startTempLab({
    pools: [
      {
        name: 'p',
        users: [{ user: 'root', password: 'pw' }],
        srs: [{ name: 'sr' }],
        networks: [{ name: 'net' }, { name: 'vlan', vlan: 5 }],
        vms: [
          {
            name: 'run',
            powerState: 'Running',
            disks: [{ size: '8 MiB', filled: '4 MiB', seed: 11 }],
            networks: ['net', 'vlan'],
          },
          { name: 'off', disks: [{ size: '4 MiB' }] },
        ],
      },
    ],
  })
  url = lab.pools[0]!.url
  s = await login(lab.pools[0]!)
})

afterAll(async () => {
  await lab?.stop()
})

describe('VM.snapshot / clone / destroy / create', () => {
  it('makes a snapshot that is a template, keeps MACs, copies no blocked_operations and snapshots the disks copy-on-write', async () => {
    const vm = await vmNamed('run')
    await ok(url, 'VM.add_to_blocked_operations', s, vm, 'clone', 'no clones')
    const snap = await ok<string>(url, 'VM.snapshot', s, vm, 'snap1', [])
    const record = await rec('VM', snap)
    expect(record).toMatchObject({
      is_a_snapshot: true,
      is_a_template: true,
      snapshot_of: vm,
      power_state: 'Halted',
      blocked_operations: {},
      snapshot_info: { 'power-state-at-snapshot': 'Running', 'disk-snapshot-type': 'crash_consistent' },
    })
    expect(record['snapshot_time']).toMatch(/^\d{8}T\d{2}:\d{2}:\d{2}Z$/)
    const source = await rec('VM', vm)
    expect(source['snapshots']).toEqual([snap])
    expect(source['parent']).toBe(snap)
    expect((await rec('VM', snap))['children']).toEqual([vm])

    const [sourceVdi] = await disksOf(vm)
    const [snapVdi] = await disksOf(snap)
    const vdi = await rec('VDI', snapVdi!)
    expect(vdi).toMatchObject({
      is_a_snapshot: true,
      snapshot_of: sourceVdi,
      virtual_size: 8 * MiB,
      physical_utilisation: 4 * MiB,
    })
    expect(vdi['location']).toBe(vdi['uuid'])
    const sourceRecord = await rec('VDI', sourceVdi!)
    expect(sourceRecord['snapshots']).toEqual([snapVdi])
    expect((sourceRecord['sm_config'] as Rec)['vdi_type']).toBe('vhd')
    expect(typeof (sourceRecord['sm_config'] as Rec)['vhd-parent']).toBe('string')
    // the running VM's new leaf is empty: everything it holds is below the snapshot point
    expect(sourceRecord['physical_utilisation']).toBe(0)

    const vifs = async (v: string): Promise<string[]> =>
      Promise.all(((await rec('VM', v))['VIFs'] as string[]).map(async vif => (await rec('VIF', vif))['MAC'] as string))
    expect((await vifs(snap)).sort()).toEqual((await vifs(vm)).sort())
    for (const vbd of (await rec('VM', snap))['VBDs'] as string[])
      expect((await rec('VBD', vbd))['currently_attached']).toBe(false)

    // writes after the snapshot do not show in it
    await lab.control.writeGuestData('p', vm, { blocks: [0], seed: 99 })
    expect((await lab.control.readGuestData('p', vm, 0, 16)).equals(guestBlock(99, 0).subarray(0, 16))).toBe(true)
    expect((await lab.control.readGuestData('p', snapVdi!, 0, 16)).equals(guestBlock(11, 0).subarray(0, 16))).toBe(true)
    expect((await rec('VDI', sourceVdi!))['physical_utilisation']).toBe(2 * MiB)
  })

  it('refuses blocked operations before looking at the power state, and snapshots of snapshots', async () => {
    const vm = await vmNamed('run')
    expect(await failure(url, 'VM.clone', s, vm, 'x')).toEqual(['OPERATION_BLOCKED', [vm, 'no clones']])
    expect((await rec('VM', vm))['allowed_operations']).not.toContain('clone')
    await ok(url, 'VM.remove_from_blocked_operations', s, vm, 'clone')
    const allowed = (await rec('VM', vm))['allowed_operations'] as string[]
    expect(allowed).toEqual(expect.arrayContaining(['snapshot', 'clean_shutdown', 'hard_shutdown']))
    expect(allowed).not.toContain('start')
    // running: clone needs a halted VM, so it is still not allowed
    expect(allowed).not.toContain('clone')
    expect(await failure(url, 'VM.clone', s, vm, 'x')).toEqual(['VM_BAD_POWER_STATE', [vm, 'halted', 'running']])
    expect(await failure(url, 'VM.destroy', s, vm)).toEqual([
      'VM_BAD_POWER_STATE',
      [vm, 'halted, suspended', 'running'],
    ])
    const [snap] = (await rec('VM', vm))['snapshots'] as string[]
    expect(await failure(url, 'VM.snapshot', s, snap, 'again')).toEqual(['VM_IS_SNAPSHOT', [snap, 'snapshot']])
    expect(await failure(url, 'VM.start', s, snap, false, false)).toEqual(['VM_IS_SNAPSHOT', [snap, 'start']])
  })

  it('clones a snapshot into a new VM with fresh MACs, and VM.destroy leaves its VDIs behind', async () => {
    const vm = await vmNamed('run')
    const [snap] = (await rec('VM', vm))['snapshots'] as string[]
    const clone = await ok<string>(url, 'VM.clone', s, snap, 'replica')
    const record = await rec('VM', clone)
    expect(record).toMatchObject({
      is_a_snapshot: false,
      snapshot_of: 'OpaqueRef:NULL',
      power_state: 'Halted',
      blocked_operations: {},
      parent: 'OpaqueRef:NULL',
    })
    expect((record['other_config'] as Rec)['mac_seed']).not.toBe(
      ((await rec('VM', snap!))['other_config'] as Rec)['mac_seed'],
    )
    const disks = await disksOf(clone)
    expect(disks).toHaveLength(1)
    expect((await lab.control.readGuestData('p', disks[0]!, 0, 16)).equals(guestBlock(11, 0).subarray(0, 16))).toBe(
      true,
    )
    await ok(url, 'VM.add_to_blocked_operations', s, clone, 'destroy', 'keep me')
    expect(await failure(url, 'VM.destroy', s, clone)).toEqual(['OPERATION_BLOCKED', [clone, 'keep me']])
    await ok(url, 'VM.remove_from_blocked_operations', s, clone, 'destroy')
    await ok(url, 'VM.destroy', s, clone)
    expect(await failure(url, 'VM.get_record', s, clone)).toEqual(['HANDLE_INVALID', ['VM', clone]])
    expect((await rec('VDI', disks[0]!))['VBDs']).toEqual([])
    await ok(url, 'VDI.destroy', s, disks[0])
  })

  it('creates VMs with blocked_operations forced to {} and reports a missing member as FIELD_TYPE_ERROR', async () => {
    const vm = await ok<string>(url, 'VM.create', s, { ...VM_CREATE_RECORD, blocked_operations: { start: 'nope' } })
    const record = await rec('VM', vm)
    expect(record).toMatchObject({
      power_state: 'Halted',
      blocked_operations: {},
      is_a_snapshot: false,
      name_label: 'created',
      domain_type: 'hvm',
    })
    expect(typeof (record['other_config'] as Rec)['mac_seed']).toBe('string')
    const { recommendations: _dropped, ...partial } = VM_CREATE_RECORD
    expect(await failure(url, 'VM.create', s, partial)).toEqual(['FIELD_TYPE_ERROR', ['recommendations']])
  })

  it('starts and shuts down VMs, attaching and detaching their devices', async () => {
    const vm = await vmNamed('off')
    await ok(url, 'VM.start', s, vm, false, false)
    const running = await rec('VM', vm)
    expect(running['power_state']).toBe('Running')
    expect(running['resident_on']).toBe(
      (await ok<Rec>(url, 'pool.get_record', s, (await ok<string[]>(url, 'pool.get_all', s))[0]))['master'],
    )
    const [vdi] = await disksOf(vm)
    expect(await failure(url, 'VDI.destroy', s, vdi)).toEqual(['VDI_IN_USE', [vdi!, 'destroy']])
    expect((await rec('VDI', vdi!))['allowed_operations']).not.toContain('destroy')
    const [vbd] = (await rec('VM', vm))['VBDs'] as string[]
    await ok(url, 'VBD.unplug', s, vbd)
    expect(await failure(url, 'VBD.unplug', s, vbd)).toEqual(['DEVICE_ALREADY_DETACHED', [vbd!]])
    expect((await rec('VDI', vdi!))['allowed_operations']).toContain('destroy')
    await ok(url, 'VBD.plug', s, vbd)
    expect(await failure(url, 'VM.set_memory_limits', s, vm, '1', '2', '1', '2')).toEqual([
      'VM_BAD_POWER_STATE',
      [vm, 'halted', 'running'],
    ])
    await ok(url, 'VM.clean_shutdown', s, vm)
    expect((await rec('VM', vm))['power_state']).toBe('Halted')
    expect(await failure(url, 'VM.clean_shutdown', s, vm)).toEqual(['VM_BAD_POWER_STATE', [vm, 'running', 'halted']])
    expect((await failure(url, 'VM.set_memory_limits', s, vm, '4', '2', '1', '2'))[0]).toBe(
      'MEMORY_CONSTRAINT_VIOLATION',
    )
    await ok(
      url,
      'VM.set_memory_limits',
      s,
      vm,
      String(256 * MiB),
      String(512 * MiB),
      String(512 * MiB),
      String(512 * MiB),
    )
    expect((await rec('VM', vm))['memory_static_max']).toBe(512 * MiB)
  })
})

describe('VDI, VBD and VIF', () => {
  it('creates, resizes (rounded to 2 MiB) and copies VDIs', async () => {
    const [sr] = await ok<string[]>(url, 'SR.get_all', s)
    expect(
      await failure(url, 'VDI.create', s, {
        SR: sr,
        virtual_size: '1',
        type: 'user',
        sharable: false,
        read_only: false,
      }),
    ).toEqual(['FIELD_TYPE_ERROR', ['other_config']])
    const vdi = await ok<string>(url, 'VDI.create', s, {
      SR: sr,
      virtual_size: '3000000',
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: { a: 'b' },
      name_label: 'd',
    })
    expect(await ok(url, 'VDI.get_virtual_size', s, vdi)).toBe(4 * MiB)
    await ok(url, 'VDI.resize', s, vdi, String(5 * MiB))
    expect(await ok(url, 'VDI.get_virtual_size', s, vdi)).toBe(6 * MiB)
    await lab.control.writeGuestData('p', vdi, [{ offset: 5 * MiB, data: Buffer.from('tail') }])
    const copy = await ok<string>(url, 'VDI.copy', s, vdi, sr)
    expect((await lab.control.readGuestData('p', copy, 5 * MiB, 4)).toString()).toBe('tail')
    expect(await ok(url, 'VDI.get_other_config', s, copy)).toEqual({ a: 'b' })
    expect((await ok<Rec>(url, 'SR.get_record', s, sr))['VDIs']).toEqual(expect.arrayContaining([vdi, copy]))
  })

  it('checks VBD and VIF creation as XAPI does', async () => {
    const vm = await vmNamed('off')
    const [vdi] = await disksOf(vm)
    const base = {
      VM: vm,
      VDI: vdi,
      bootable: false,
      mode: 'RW',
      type: 'Disk',
      empty: false,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    }
    expect(await failure(url, 'VBD.create', s, { ...base, userdevice: '0' })).toEqual(['DEVICE_ALREADY_EXISTS', ['0']])
    expect(await failure(url, 'VBD.create', s, { ...base, userdevice: 'xvda' })).toEqual([
      'DEVICE_ALREADY_EXISTS',
      ['xvda'],
    ])
    expect(await failure(url, 'VBD.create', s, { ...base, userdevice: 'bogus' })).toEqual(['INVALID_DEVICE', ['bogus']])
    expect(
      await failure(url, 'VBD.create', s, { ...base, userdevice: '3', type: 'CD', VDI: 'OpaqueRef:NULL', empty: true }),
    ).toEqual(['VBD_CDS_MUST_BE_READONLY', []])
    const vbd = await ok<string>(url, 'VBD.create', s, { ...base, userdevice: 'autodetect' })
    expect(await rec('VBD', vbd)).toMatchObject({ userdevice: '1', device: '', currently_attached: false })
    await ok(url, 'VBD.destroy', s, vbd)
    const [net] = await ok<string[]>(url, 'network.get_by_name_label', s, 'net')
    const vifBase = {
      device: '0',
      network: net,
      VM: vm,
      MTU: '1500',
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    }
    expect(await failure(url, 'VIF.create', s, { ...vifBase, MAC: 'zz' })).toEqual(['MAC_INVALID', ['zz']])
    const vif = await ok<string>(url, 'VIF.create', s, { ...vifBase, MAC: '' })
    expect(await rec('VIF', vif)).toMatchObject({ MAC_autogenerated: true, device: '0' })
    expect(await failure(url, 'VIF.create', s, { ...vifBase, MAC: '' })).toEqual(['DEVICE_ALREADY_EXISTS', ['0']])
    const [vlanPif] = (
      await ok<Rec>(url, 'network.get_record', s, (await ok<string[]>(url, 'network.get_by_name_label', s, 'vlan'))[0])
    )['PIFs'] as string[]
    expect(await rec('PIF', vlanPif!)).toMatchObject({ VLAN: 5, device: 'eth0.5' })
  })
})

describe('faults', () => {
  it('fails a method on its Nth call only, with the given code and params', async () => {
    const vm = await vmNamed('run')
    lab.control.injectFault('p', {
      kind: 'error',
      method: 'VM.snapshot',
      code: 'SR_BACKEND_FAILURE_44',
      params: ['', 'There is insufficient space', ''],
      nth: 2,
    })
    await ok(url, 'VM.snapshot', s, vm, 'f1')
    expect(await failure(url, 'VM.snapshot', s, vm, 'f2')).toEqual([
      'SR_BACKEND_FAILURE_44',
      ['', 'There is insufficient space', ''],
    ])
    await ok(url, 'VM.snapshot', s, vm, 'f3')
  })

  it('drops the connection of a faulted method, then clears faults', async () => {
    lab.control.injectFault('p', { kind: 'drop', method: 'VM.get_all' })
    await expect(jsonCall(url, 'VM.get_all', s)).rejects.toThrow()
    await ok(url, 'pool.get_all', s)
    lab.control.clearFaults('p')
    await ok(url, 'VM.get_all', s)
  })

  it('takes faults and guest data over the /lab/ HTTP control API', async () => {
    const post = (path: string, body: unknown): Promise<Response> =>
      fetch(new URL(path, url), { method: 'POST', body: JSON.stringify(body) })
    expect(
      (
        await post('/lab/faults', {
          pool: 'p',
          fault: { kind: 'error', method: 'VM.get_all', code: 'INTERNAL_ERROR', params: ['boom'] },
        })
      ).status,
    ).toBe(200)
    expect(await failure(url, 'VM.get_all', s)).toEqual(['INTERNAL_ERROR', ['boom']])
    expect((await fetch(new URL('/lab/faults?pool=p', url), { method: 'DELETE' })).status).toBe(200)
    await ok(url, 'VM.get_all', s)
    expect((await post('/lab/faults', { pool: 'p', fault: { kind: 'nonsense' } })).status).toBe(400)

    const vm = lab.control.findVm('p', 'off')!
    expect(
      (
        await post('/lab/guest-data', {
          pool: 'p',
          target: vm.uuid,
          writes: [{ offset: 512, data: Buffer.from('hello').toString('base64') }],
        })
      ).status,
    ).toBe(200)
    const read = await fetch(new URL(`/lab/guest-data?pool=p&target=${vm.vdis[0]!.uuid}&offset=512&length=5`, url))
    expect(Buffer.from(await read.arrayBuffer()).toString()).toBe('hello')
    const found = (await (await fetch(new URL('/lab/vms?pool=p&name=off', url))).json()) as { uuid: string }
    expect(found.uuid).toBe(vm.uuid)
  })
})
