/**
 * Restarting a lab on the same dir restores the pools (tests of other modules kill and restart
 * it): objects made through the API, guest data, sessions, passwords, the config file and,
 * when free, the same addresses. Without persistence the second start would build a fresh
 * pool from the spec and every assertion on the snapshot and the written bytes would fail.
 */
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import { startLab, type Lab } from '../../src/lab/start.js'
import { makeTempDir } from '../helpers/tmp.js'
import { failure, ok } from './lab-rpc.js'

let labs: Lab[] = []
let tmp: { path: string; remove: () => Promise<void> } | undefined

afterEach(async () => {
  for (const lab of labs) await lab.stop()
  labs = []
  await tmp?.remove()
})

it('restores objects, disks, sessions and credentials when restarted on the same dir', async () => {
  tmp = await makeTempDir()
  const first = await startLab({
    dir: tmp.path,
    spec: {
      pools: [
        {
          name: 'a',
          hosts: ['a1', 'a2'],
          srs: [{ name: 'sr', shared: true }],
          vms: [{ name: 'vm', disks: [{ size: '8 MiB', filled: '2 MiB', seed: 5 }] }],
        },
        { name: 'b', srs: [{ name: 'empty' }] },
      ],
    },
  })
  labs.push(first)
  const pool = first.pools[0]!
  const session = await ok<string>(pool.url, 'session.login_with_password', pool.user, pool.password)
  const [vm] = await ok<string[]>(pool.url, 'VM.get_by_name_label', session, 'vm')
  const snapshot = await ok<string>(pool.url, 'VM.snapshot', session, vm, 'kept snapshot')
  await ok(pool.url, 'VM.add_to_other_config', session, vm, 'xo:backup:job', 'job-1')
  await first.control.writeGuestData('a', vm!, { blocks: [3], seed: 77 })
  const written = await first.control.readGuestData('a', vm!, 3 * 2 * 1024 * 1024, 4096)
  const config = await readFile(first.configPath, 'utf8')
  await first.stop()
  labs = []

  // A different spec is ignored: the dir already holds a lab.
  const second = await startLab({ dir: tmp.path, spec: { pools: [{ name: 'other' }] } })
  labs.push(second)
  expect(second.pools.map(p => p.name)).toEqual(['a', 'b'])
  expect([first.restored, second.restored]).toEqual([false, true])
  const again = second.pools[0]!
  expect(again.password).toBe(pool.password)
  expect(again.hosts.map(h => h.uuid)).toEqual(pool.hosts.map(h => h.uuid))
  // the old session is still valid, as XAPI keeps sessions in its database
  expect(await ok<string>(again.url, 'VM.get_name_label', session, snapshot)).toBe('kept snapshot')
  expect(await ok(again.url, 'VM.get_other_config', session, vm)).toMatchObject({ 'xo:backup:job': 'job-1' })
  expect(await ok(again.url, 'VM.get_snapshots', session, vm)).toEqual([snapshot])
  expect((await second.control.readGuestData('a', vm!, 3 * 2 * 1024 * 1024, 4096)).equals(written)).toBe(true)
  const [vdi] = second.control.findVm('a', 'vm')!.vdis
  expect(await ok(again.url, 'VDI.get_physical_utilisation', session, vdi!.ref)).toBe(2 * 1024 * 1024)
  // The config file points at where the pools listen now.
  const restarted = JSON.parse(await readFile(second.configPath, 'utf8')) as {
    pools: Record<string, { url: string; passwordFile: string }>
  }
  expect(restarted.pools['a']!.url).toBe(again.url)
  if (again.url === pool.url) expect(await readFile(second.configPath, 'utf8')).toBe(config)
  expect((await stat(join(tmp.path, restarted.pools['a']!.passwordFile))).mode & 0o777).toBe(0o600)
  expect(await readFile(join(tmp.path, 'a.password'), 'utf8')).toBe(pool.password)
  // the member still points clients at the master
  expect(await failure(again.hosts[1]!.url, 'session.login_with_password', again.user, again.password)).toEqual([
    'HOST_IS_SLAVE',
    [again.hosts[0]!.address],
  ])

  // a damaged state file is named, not a raw JSON error
  await second.stop()
  labs = []
  await writeFile(join(tmp.path, 'pools', 'a', 'db.json'), '{"trunc')
  await expect(startLab({ dir: tmp.path })).rejects.toMatchObject({ code: 'LAB_STATE_CORRUPT' })
})

it('holds a failed login for the configured delay without blocking other callers', async () => {
  tmp = await makeTempDir()
  const lab = await startLab({
    dir: tmp.path,
    loginDelayMs: 600_000,
    spec: { pools: [{ name: 'p', users: [{ user: 'root', password: 'right' }] }] },
  })
  labs.push(lab)
  const url = lab.pools[0]!.url
  let settled = false
  const bad = fetch(new URL('/jsonrpc', url), {
    method: 'POST',
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session.login_with_password', params: ['root', 'wrong'] }),
  }).then(
    async response => {
      settled = true
      return (JSON.parse(await response.text()) as { error: { message: string } }).error.message
    },
    () => {
      settled = true
      return 'connection closed'
    },
  )
  // a good login and a call go through while the bad one waits
  const session = await ok<string>(url, 'session.login_with_password', 'root', 'right')
  await ok(url, 'pool.get_all', session)
  expect(settled).toBe(false)
  await lab.stop()
  labs = []
  // stopping the lab ends the wait: the caller gets a closed connection, not a 10-minute hang
  expect(['SESSION_AUTHENTICATION_FAILED', 'connection closed']).toContain(await bad)
})

it('keeps the lab-wide guest setting, the NBD port and network purposes across a restart', async () => {
  tmp = await makeTempDir()
  const spec = {
    guest: { tools: 'never' as const },
    pools: [
      { name: 'n', srs: [{ name: 'sr' }], networks: [{ name: 'm' }], vms: [{ name: 'v', disks: [{ size: '2 MiB' }] }] },
    ],
  }
  const first = await startLab({ dir: tmp.path, spec })
  labs.push(first)
  const pool = first.pools[0]!
  const session = await ok<string>(pool.url, 'session.login_with_password', pool.user, pool.password)
  const vdi = first.control.findVm('n', 'v')!.vdis[0]!
  const [before] = await ok<{ port: number }[]>(pool.url, 'VDI.get_nbd_info', session, vdi.ref)
  await first.stop()
  labs = []

  const second = await startLab({ dir: tmp.path })
  labs.push(second)
  const url = second.pools[0]!.url
  const [after] = await ok<{ port: number; cert: string }[]>(url, 'VDI.get_nbd_info', session, vdi.ref)
  if (url === pool.url) expect(after!.port).toBe(before!.port)
  expect(after!.cert).toMatch(/^-----BEGIN CERTIFICATE-----/)
  // the spec is not read again: the lab-wide "never" comes from the lab directory. A clone told
  // to report after 10 ms does; the VM itself, started first, still has no tools once it has.
  const [vm] = await ok<string[]>(url, 'VM.get_by_name_label', session, 'v')
  const clone = await ok<string>(url, 'VM.clone', session, vm, 'w')
  second.control.setGuest('n', clone, { tools: 10 })
  await ok(url, 'VM.start', session, vm, false, false)
  await ok(url, 'VM.start', session, clone, false, false)
  let token = ''
  while ((await ok<string>(url, 'VM.get_guest_metrics', session, clone)) === 'OpaqueRef:NULL')
    token = (await ok<{ token: string }>(url, 'event.from', session, [`VM/${clone}`], token, 10)).token
  expect(await ok(url, 'VM.get_guest_metrics', session, vm)).toBe('OpaqueRef:NULL')
  const [network] = await ok<string[]>(url, 'network.get_all', session)
  expect(await ok(url, 'network.get_purpose', session, network)).toEqual(['nbd'])
  expect(JSON.parse(await readFile(join(tmp.path, 'lab.json'), 'utf8'))).toMatchObject({ guest: { tools: 'never' } })
})
