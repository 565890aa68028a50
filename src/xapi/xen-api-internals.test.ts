/**
 * The two private `xen-api` fields xen-cr overrides (xen-api-internals.ts) must exist and still
 * do what the overrides rely on; a rename upstream would make them silent no-ops (the SIGINT
 * exit would wait for the CLI's watchdog, a coordinator on another port would be missed). Each
 * behaviour is shown against a small JSON-RPC host on loopback that counts logins or never
 * answers, with a control run showing what xen-api does without the override.
 */
import { readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { createRequire } from 'node:module'
import { Xapi } from 'xen-api'
import { afterEach, describe, expect, it } from 'vitest'
import { AbortedError } from '../errors.js'
import { XapiClient } from './client.js'
import { closeConnections, disableInternalMasterFollow, disableInternalSessionRenewal } from './xen-api-internals.js'

/** The xen-api release whose index.mjs the overrides were checked against. */
const VERIFIED_XEN_API = '4.7.6'

/** What the host answers to a call: a XAPI error (code, params…), a result, or no answer at all. */
type Answer = readonly [string, ...string[]] | 'hold' | { readonly result: unknown }

interface FakeHost {
  readonly url: string
  readonly port: number
  /** `session.login_with_password` calls received */
  readonly logins: () => number
  /** the socket of the first request held without an answer */
  readonly held: Promise<Socket>
}

const servers: Server[] = []

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  }
})

async function fakeHost(answer: (method: string) => Answer | Promise<Answer>): Promise<FakeHost> {
  let logins = 0
  let onHeld: (socket: Socket) => void = () => undefined
  const held = new Promise<Socket>(resolve => (onHeld = resolve))
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (body += chunk))
    req.on('end', () => {
      const call = JSON.parse(body) as { method: string; id: unknown }
      if (call.method === 'session.login_with_password') logins++
      void Promise.resolve(answer(call.method)).then(reply => {
        if (reply === 'hold') {
          onHeld(req.socket)
          return
        }
        const json =
          'result' in reply
            ? { jsonrpc: '2.0', result: reply.result, id: call.id }
            : // XAPI's JSON-RPC v2 failure, as the lab's wire/jsonrpc.ts encodes it
              { jsonrpc: '2.0', error: { code: 1, message: reply[0], data: reply.slice(1) }, id: call.id }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(json))
      })
    })
  })
  servers.push(server)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, port, logins: () => logins, held }
}

function newXapi(url: string): Xapi {
  return new Xapi({ url, auth: { user: 'root', password: 'pw' }, watchEvents: false })
}

/**
 * Resolves when the host's side of the socket has closed. A dispatcher that closes it does so in
 * milliseconds; one that does not leaves it for 5 minutes: the 10 s bound tells them apart on
 * any machine, and fails with a message rather than the test's timeout.
 */
function closed(socket: Socket): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const close = new Promise<void>(resolve => (socket.destroyed ? resolve() : socket.once('close', () => resolve())))
  const stillOpen = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error('the login request is still open 10 s after it was dropped')), 10_000)
  })
  return Promise.race([close, stillOpen]).finally(() => clearTimeout(timer))
}

describe('xen-api private fields overridden by xen-cr', () => {
  it('are checked against the xen-api version package.json pins exactly', async () => {
    const manifest = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
      dependencies: Record<string, string>
    }
    const installed = JSON.parse(
      await readFile(createRequire(import.meta.url).resolve('xen-api/package.json'), 'utf8'),
    ) as { version: string }
    // A range (^4.7.6) would let an install pick a release where the fields are gone.
    expect(manifest.dependencies['xen-api']).toBe(VERIFIED_XEN_API)
    expect(installed.version).toBe(VERIFIED_XEN_API)
  })

  it('exist on a new Xapi with the defaults the overrides change', () => {
    const xapi = newXapi('http://127.0.0.1:9')
    const internals = xapi as unknown as Record<string, unknown>
    expect(internals['_sessionOpenRetryOptions']).toMatchObject({ tries: 2, when: { code: 'HOST_IS_SLAVE' } })
    expect(internals['_sessionCallRetryOptions']).toMatchObject({ tries: 2, when: expect.any(Function) as unknown })
    expect(internals['_undiciDispatcher']).toHaveProperty('destroy', expect.any(Function))
    closeConnections(xapi)
  })

  it('disableInternalMasterFollow: a login answered HOST_IS_SLAVE is sent once and its error reaches the caller', async () => {
    // The member names itself: xen-api's retry (hostname swapped, port kept) comes back here.
    const member = await fakeHost(() => ['HOST_IS_SLAVE', '127.0.0.1'])
    const control = newXapi(member.url)
    await expect(control.connect()).rejects.toMatchObject({ code: 'HOST_IS_SLAVE' })
    expect(member.logins()).toBe(2)
    closeConnections(control)

    const xapi = newXapi(member.url)
    disableInternalMasterFollow(xapi)
    await expect(xapi.connect()).rejects.toMatchObject({ code: 'HOST_IS_SLAVE', params: ['127.0.0.1'] })
    expect(member.logins()).toBe(3)
    closeConnections(xapi)
  })

  it('closeConnections: ends a login the host never answers, which disconnect() leaves open', async () => {
    const silent = await fakeHost(() => 'hold')
    const xapi = newXapi(silent.url)
    const connecting = xapi.connect()
    connecting.catch(() => undefined)
    const socket = await silent.held
    await xapi.disconnect()
    await expect(connecting).rejects.toThrow(/disconnected/)
    await new Promise(resolve => setImmediate(resolve))
    // what xen-api leaves behind on its own: the request still waits for its 5-minute timeout
    expect(socket.destroyed).toBe(false)
    closeConnections(xapi)
    await closed(socket)
  })
})

/**
 * A host whose first session goes stale: `VBD.create` answers SESSION_INVALID once, and the
 * login that follows is held until `release()` — long enough for another call to come in while
 * the client has no session, as a busy host's slow login does during a pass.
 */
async function staleSessionHost(): Promise<FakeHost & { release(): void; relogin: Promise<void> }> {
  let release: () => void = () => undefined
  const released = new Promise<void>(resolve => (release = resolve))
  let onRelogin: () => void = () => undefined
  const relogin = new Promise<void>(resolve => (onRelogin = resolve))
  let logins = 0
  let staled = false
  const host = await fakeHost(async method => {
    switch (method) {
      case 'session.login_with_password':
        if (++logins > 1) {
          onRelogin()
          await released
        }
        return { result: `OpaqueRef:session-${logins}` }
      case 'session.logout':
        return { result: '' }
      case 'pool.get_all_records':
        return { result: { 'OpaqueRef:pool': { uuid: 'p', name_label: 'pool' } } }
      case 'system.listMethods':
        return { result: ['pool.get_all_records', 'task.get_all_records'] }
      case 'VBD.create':
        if (!staled) {
          staled = true
          return ['SESSION_INVALID', 'OpaqueRef:session-1']
        }
        return { result: 'OpaqueRef:vbd' }
      case 'task.get_record':
        return { result: { uuid: 't', status: 'success' } }
      default:
        return ['MESSAGE_METHOD_UNKNOWN', method]
    }
  })
  return { ...host, release, relogin }
}

describe('disableInternalSessionRenewal', () => {
  it("a call made while the session is renewed no longer fails on xen-api's session assertion", async () => {
    // Without the override (the bug of issue 8): xen-api renews the session inside the failed
    // call, and a call made meanwhile has no session id and dies on an assertion.
    const control = await staleSessionHost()
    const raw = newXapi(control.url)
    await raw.connect()
    const creating = raw.call('VBD.create', {})
    await control.relogin
    await expect(raw.call('task.get_record', 'OpaqueRef:t')).rejects.toMatchObject({
      code: 'ERR_ASSERTION',
      message: expect.stringMatching(/strictly unequal to:\s*undefined/) as unknown,
    })
    control.release()
    await expect(creating).resolves.toBe('OpaqueRef:vbd')
    closeConnections(raw)

    // With it, through XapiClient: SESSION_INVALID comes back, the client logs in again once,
    // and both calls — the one that hit the stale session and the one that came in during the
    // login — succeed.
    const host = await staleSessionHost()
    const client = await XapiClient.connect({ url: host.url, user: 'root', password: 'pw' })
    try {
      const created = client.call('VBD.create', [{}])
      await host.relogin
      const reading = client.call('task.get_record', ['OpaqueRef:t'])
      host.release()
      await expect(created).resolves.toBe('OpaqueRef:vbd')
      await expect(reading).resolves.toMatchObject({ status: 'success' })
      expect(host.logins()).toBe(2)
    } finally {
      await client.close()
    }
  })

  it('leaves SESSION_INVALID to the caller of a bare Xapi', async () => {
    const host = await staleSessionHost()
    const xapi = newXapi(host.url)
    disableInternalSessionRenewal(xapi)
    await xapi.connect()
    await expect(xapi.call('VBD.create', {})).rejects.toMatchObject({ code: 'SESSION_INVALID' })
    expect(host.logins()).toBe(1)
    expect(xapi.status).toBe('disconnected')
    closeConnections(xapi)
  })
})

describe('XapiClient through the overrides', () => {
  it('follows HOST_IS_SLAVE to a coordinator on another port, logging in once at each host', async () => {
    const coordinator = await fakeHost(() => ['SESSION_AUTHENTICATION_FAILED', 'root', 'Authentication failure'])
    const member = await fakeHost(() => ['HOST_IS_SLAVE', `127.0.0.1:${coordinator.port}`])
    const error = await XapiClient.connect({ url: member.url, user: 'root', password: 'pw' }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'POOL_AUTH_FAILED', url: coordinator.url })
    expect(member.logins()).toBe(1)
    expect(coordinator.logins()).toBe(1)
  })

  it('an aborted login closes its connection, so nothing keeps the process alive', async () => {
    const silent = await fakeHost(() => 'hold')
    const controller = new AbortController()
    const connecting = XapiClient.connect({
      url: silent.url,
      user: 'root',
      password: 'pw',
      signal: controller.signal,
    })
    connecting.catch(() => undefined)
    const socket = await silent.held
    controller.abort()
    await expect(connecting).rejects.toBeInstanceOf(AbortedError)
    // without closeConnections the socket stays for xen-api's 5-minute inactivity timeout
    await closed(socket)
    expect(silent.logins()).toBe(1)
  })
})
