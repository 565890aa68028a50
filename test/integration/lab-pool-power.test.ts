/**
 * A lab pool goes down like a lost site and comes back: while down, every host of the pool
 * refuses connections (XAPI, data paths, NBD; open connections are cut), the control API stays
 * reachable through the other pool's hosts; once up, the hosts answer on the same addresses and
 * ports with the same objects and disks, and every session is gone as after a host restart.
 * Without the site switch a DR rehearsal could only stop the whole lab.
 */
import { request } from 'node:http'
import { connect as netConnect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConnectionError } from '../../src/errors.js'
import type { Lab, LabPoolInfo } from '../../src/lab/start.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'

/** How a TCP connection to `address:port` ends: `connected` or the error code (ECONNREFUSED). */
function tcpOutcome(address: string, port: number): Promise<string> {
  return new Promise(resolve => {
    const socket = netConnect({ host: address, port })
    socket.once('connect', () => {
      socket.destroy()
      resolve('connected')
    })
    socket.once('error', error => resolve((error as NodeJS.ErrnoException).code ?? error.message))
  })
}

/**
 * One JSON-RPC call on a connection of its own: a keep-alive socket from before the site went
 * down is dead, and a pooled client (fetch) may not have noticed yet when it sends the next call.
 */
function call(url: string, method: string, ...params: unknown[]): Promise<{ result?: unknown; error?: unknown }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method, params })
    const req = request(`${url}/jsonrpc`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json' },
    })
    req.on('response', res => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { result?: unknown }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function ok<T = unknown>(url: string, method: string, ...params: unknown[]): Promise<T> {
  const answer = await call(url, method, ...params)
  if (answer.error !== undefined) throw new Error(`${method} failed: ${JSON.stringify(answer.error)}`)
  return answer.result as T
}

async function failure(url: string, method: string, ...params: unknown[]): Promise<[string, string[]]> {
  const { error } = await call(url, method, ...params)
  if (error === undefined) throw new Error(`${method} unexpectedly succeeded`)
  const { message, data } = error as { message: string; data: string[] }
  return [message, data]
}

function login(pool: LabPoolInfo): Promise<string> {
  return ok<string>(pool.url, 'session.login_with_password', pool.user, pool.password)
}

async function control(via: string, path: string, body: unknown = {}): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${via}${path}`, { method: 'POST', body: JSON.stringify(body) })
  return { status: response.status, json: await response.json() }
}

let lab: Lab | undefined
let a: LabPoolInfo
let b: LabPoolInfo

beforeAll(async () => {
  lab = await startTempLab({
    pools: [
      {
        name: 'a',
        hosts: ['a1', 'a2'],
        srs: [{ name: 'shared', shared: true }],
        networks: [{ name: 'management' }],
        vms: [
          { name: 'running', powerState: 'Running', disks: [{ size: '8 MiB', filled: '2 MiB', seed: 31 }] },
          { name: 'halted', disks: [{ size: '4 MiB', filled: '1 MiB', seed: 32 }] },
        ],
      },
      { name: 'b', srs: [{ name: 'replicas' }], networks: [{ name: 'management' }] },
    ],
  })
  a = labPool(lab, 'a')
  b = labPool(lab, 'b')
})

afterAll(async () => {
  await lab?.stop()
})

describe('a lab pool taken down and brought back', () => {
  it('refuses every connection while down, keeps its state, and comes back without sessions', async () => {
    const session = await login(a)
    const [vm] = await ok<string[]>(a.url, 'VM.get_by_name_label', session, 'halted')
    const snapshot = await ok<string>(a.url, 'VM.snapshot', session, vm, 'before the disaster')
    await lab!.control.writeGuestData('a', vm!, { blocks: [1], seed: 99 })
    const written = await lab!.control.readGuestData('a', vm!, 2 * 1024 * 1024, 64 * 1024)
    const [vdi] = lab!.control.findVm('a', 'halted')!.vdis
    const [nbd] = await ok<{ address: string; port: number }[]>(a.url, 'VDI.get_nbd_info', session, vdi!.ref)
    // a long poll in flight when the site goes
    const polling = fetch(`${a.url}/jsonrpc`, {
      method: 'POST',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'event.from', params: [session, ['task'], '', 30] }),
    }).then(
      () => 'answered',
      (error: unknown) => ((error as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? 'failed',
    )

    // through a host of the other pool
    expect(await control(b.url, '/lab/pools/a/down')).toEqual({ status: 200, json: { ok: true, pool: 'a', up: false } })
    expect(lab!.control.isPoolUp('a')).toBe(false)
    expect(await polling).not.toBe('answered')
    for (const host of a.hosts) {
      const port = Number(new URL(host.url).port)
      expect(await tcpOutcome(host.address, port)).toBe('ECONNREFUSED')
      expect(await tcpOutcome(host.address, nbd!.port)).toBe('ECONNREFUSED')
    }
    const refused = await connectLabPool(a, { callTimeoutMs: 5000 }).then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(refused).toBeInstanceOf(ConnectionError)
    expect((refused as ConnectionError).code).toBe('POOL_UNREACHABLE')
    expect((refused as Error).message).toMatch(/ECONNREFUSED/)
    const pools = await (await fetch(`${b.url}/lab/pools`)).json()
    expect(pools).toEqual([
      { name: 'a', up: false },
      { name: 'b', up: true },
    ])
    // the last pool up cannot be taken down over HTTP: nothing would be left to bring it back
    const last = await control(b.url, '/lab/pools/b/down')
    expect(last.status).toBe(409)
    expect(lab!.control.isPoolUp('b')).toBe(true)

    expect(await control(b.url, '/lab/pools/a/up')).toEqual({ status: 200, json: { ok: true, pool: 'a', up: true } })
    // the same addresses and ports as before
    expect(await tcpOutcome(a.hosts[1]!.address, Number(new URL(a.hosts[1]!.url).port))).toBe('connected')
    expect(await tcpOutcome(nbd!.address, nbd!.port)).toBe('connected')
    expect(await failure(a.url, 'VM.get_name_label', session, snapshot)).toEqual(['SESSION_INVALID', [session]])
    const again = await login(a)
    expect(await ok(a.url, 'VM.get_name_label', again, snapshot)).toBe('before the disaster')
    expect(await ok(a.url, 'VM.get_snapshots', again, vm)).toEqual([snapshot])
    expect((await lab!.control.readGuestData('a', vm!, 2 * 1024 * 1024, 64 * 1024)).equals(written)).toBe(true)
    const [after] = await ok<{ address: string; port: number }[]>(a.url, 'VDI.get_nbd_info', again, vdi!.ref)
    expect(after).toMatchObject({ address: nbd!.address, port: nbd!.port })
    // the real client logs in again
    const client = await connectLabPool(a)
    await client.close()
  })

  it('is idempotent through the library, and a power cut halts the VMs that ran on the site', async () => {
    const session = await login(a)
    const [running] = await ok<string[]>(a.url, 'VM.get_by_name_label', session, 'running')
    expect(await ok(a.url, 'VM.get_power_state', session, running)).toBe('Running')
    await lab!.control.poolDown('a')
    await lab!.control.poolDown('a')
    await lab!.control.poolUp('a')
    const kept = await login(a)
    // a network cut: the VM is still running
    expect(await ok(a.url, 'VM.get_power_state', kept, running)).toBe('Running')
    // up on a pool that is up changes nothing: the session stays
    await lab!.control.poolUp('a')
    expect(await ok(a.url, 'VM.get_power_state', kept, running)).toBe('Running')

    expect((await control(b.url, '/lab/pools/a/down', { haltVms: true })).status).toBe(200)
    expect((await control(b.url, '/lab/pools/a/up')).status).toBe(200)
    const later = await login(a)
    expect(await ok(a.url, 'VM.get_power_state', later, running)).toBe('Halted')
    expect(await ok(a.url, 'VM.get_resident_on', later, running)).toBe('OpaqueRef:NULL')
    const [vbd] = await ok<string[]>(a.url, 'VM.get_VBDs', later, running)
    expect(await ok(a.url, 'VBD.get_currently_attached', later, vbd)).toBe(false)
    expect((await control(b.url, '/lab/pools/nowhere/down')).status).toBe(400)
  })
})
