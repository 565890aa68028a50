/**
 * examples/lab.json brings up what it describes: two hosts sharing one SR and a host-local SR
 * (a PBD only on its host), a VLAN network with VLAN PIFs on every host, a 2 TiB sparse disk,
 * a second user, the spec's faults armed, guests with and without tools, and NBD on the
 * management network.
 */
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Lab } from '../../src/lab/start.js'
import { startTempLab } from '../helpers/lab.js'
import { ok } from './lab-rpc.js'

let lab: Lab

beforeAll(async () => {
  lab = await startTempLab(fileURLToPath(new URL('../../examples/lab.json', import.meta.url)))
})

afterAll(async () => {
  await lab?.stop()
})

type Rec = Record<string, unknown>

it('builds the example pools as described', async () => {
  const source = lab.pools.find(p => p.name === 'source')!
  expect(source.hosts.map(h => h.name)).toEqual(['source-host1', 'source-host2'])
  expect(source.password).toBe('lab-source-password')
  const s = await ok<string>(source.url, 'session.login_with_password', 'operator', 'lab-operator-password')
  const url = source.url
  const hosts = await ok<Record<string, Rec>>(url, 'host.get_all_records', s)
  const hostByName = new Map(Object.entries(hosts).map(([ref, h]) => [h['name_label'], ref]))
  const srs = await ok<Record<string, Rec>>(url, 'SR.get_all_records', s)
  const pbdHosts = async (name: string): Promise<unknown[]> => {
    const [, sr] = Object.entries(srs).find(([, r]) => r['name_label'] === name)!
    return Promise.all(
      (sr['PBDs'] as string[]).map(async pbd => (await ok<Rec>(url, 'PBD.get_record', s, pbd))['host']),
    )
  }
  expect((await pbdHosts('Shared storage')).sort()).toEqual(
    [hostByName.get('source-host1'), hostByName.get('source-host2')].sort(),
  )
  expect(await pbdHosts('Local storage on source-host2')).toEqual([hostByName.get('source-host2')])

  const [vlan] = await ok<string[]>(url, 'network.get_by_name_label', s, 'Storage VLAN')
  const pifs = await Promise.all(
    ((await ok<Rec>(url, 'network.get_record', s, vlan))['PIFs'] as string[]).map(pif =>
      ok<Rec>(url, 'PIF.get_record', s, pif),
    ),
  )
  expect(pifs.map(p => [p['VLAN'], p['device'], p['MTU']])).toEqual([
    [42, 'eth0.42', 9000],
    [42, 'eth0.42', 9000],
  ])

  const db = lab.control.findVm('source', 'db-01')!
  expect(db.vdis.map(v => v.virtualSize)).toEqual([128 * 1024 ** 2, 2 * 1024 ** 4])
  expect(await ok(url, 'VDI.get_physical_utilisation', s, db.vdis[1]!.ref)).toBe(8 * 1024 ** 2)
  expect(await ok(url, 'VM.get_tags', s, db.ref)).toEqual(['db', 'replicate'])
  expect(lab.control.listFaults('source')).toEqual([{ kind: 'latency', method: 'VM.snapshot', ms: 200 }])

  const target = lab.pools.find(p => p.name === 'target')!
  const ts = await ok<string>(target.url, 'session.login_with_password', target.user, target.password)
  const targetVms = Object.values(await ok<Record<string, Rec>>(target.url, 'VM.get_all_records', ts)).filter(
    vm => vm['is_control_domain'] !== true,
  )
  expect(targetVms).toEqual([])
  const [pool] = await ok<string[]>(target.url, 'pool.get_all', ts)
  expect(
    await ok(target.url, 'SR.get_name_label', ts, await ok<string>(target.url, 'pool.get_default_SR', ts, pool)),
  ).toBe('Replica storage')
})

it('gives the example VMs their guests and serves NBD where the example says', async () => {
  const source = lab.pools.find(p => p.name === 'source')!
  const url = source.url
  const s = await ok<string>(url, 'session.login_with_password', source.user, source.password)
  const web = lab.control.findVm('source', 'web-01')!
  // running in the spec, with a guest that has tools: booted before the lab came up
  const metrics = await ok<string>(url, 'VM.get_guest_metrics', s, web.ref)
  expect(await ok(url, 'VM_guest_metrics.get_PV_drivers_detected', s, metrics)).toBe(true)
  expect(await ok<Rec>(url, 'VM.get_other_config', s, web.ref)).toMatchObject({
    'xen-cr-lab:guest': JSON.stringify({ tools: 1500, healthCheck: { result: 'success', delayMs: 2000 } }),
  })
  const idle = lab.control.findVm('source', 'idle-01')!
  expect(await ok(url, 'VM.get_guest_metrics', s, idle.ref)).toBe('OpaqueRef:NULL')

  const purposes = Object.values(await ok<Record<string, Rec>>(url, 'network.get_all_records', s)).map(n => [
    n['name_label'],
    n['purpose'],
  ])
  expect(purposes).toEqual([
    ['Pool-wide network associated with eth0', ['nbd']],
    ['Storage VLAN', []],
  ])
  const addresses = async (vdi: string): Promise<unknown[]> =>
    (await ok<{ address: string }[]>(url, 'VDI.get_nbd_info', s, vdi)).map(info => info.address)
  const db = lab.control.findVm('source', 'db-01')!
  expect(await addresses(db.vdis[0]!.ref)).toEqual(source.hosts.map(h => h.address))
  // the local SR is plugged on source-host2 only
  expect(await addresses(idle.vdis[0]!.ref)).toEqual([source.hosts[1]!.address])
})
