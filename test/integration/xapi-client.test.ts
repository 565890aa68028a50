/**
 * The typed XAPI client against the real lab over loopback: both transports, typed records,
 * exact server errors, async calls through tasks, session renewal, coordinator follow,
 * timeouts, aborts, and no password in any error.
 */
import { inspect } from 'node:util'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AbortedError, ConnectionError, XapiError, XenCrError } from '../../src/errors.js'
import type { Lab } from '../../src/lab/start.js'
import { XapiClient } from '../../src/xapi/client.js'
import { NULL_REF, isNullRef, type Ref } from '../../src/xapi/types.js'
import { snapshotVm, blockOperation, cloneVm, destroyVm } from '../../src/xapi/vm.js'
import { connectLabPool, startTempLab } from '../helpers/lab.js'

const PASSWORD = 'Xyzzy-Pa55word-7f3c'

let lab: Lab
const open: XapiClient[] = []

function pool(): Lab['pools'][number] {
  return lab.pools[0]!
}

async function connect(options: Partial<Parameters<typeof XapiClient.connect>[0]> = {}): Promise<XapiClient> {
  const client = await connectLabPool(pool(), options)
  open.push(client)
  return client
}

async function vmByName(client: XapiClient, name: string): Promise<Ref<'VM'>> {
  for (const [ref, vm] of await client.getAllRecords('VM')) if (vm.name_label === name) return ref
  throw new Error(`no VM ${name}`)
}

/** Every rendering of an error a user or a log could see. */
function everything(error: unknown): string {
  const e = error as Error
  return [e.message, e.stack ?? '', JSON.stringify(error), inspect(error, { depth: Infinity, showHidden: true })].join(
    '\n',
  )
}

beforeAll(async () => {
  lab = await startTempLab({
    pools: [
      {
        name: 'p',
        hosts: ['h1', 'h2'],
        users: [{ user: 'root', password: PASSWORD }],
        srs: [{ name: 'shared', shared: true, size: '10 GiB' }],
        networks: [{ name: 'net' }],
        vms: [
          {
            name: 'vm1',
            powerState: 'Halted',
            disks: [{ size: '16 MiB', filled: '6 MiB', seed: 7 }],
            networks: ['net'],
          },
          { name: 'vm2', powerState: 'Running', disks: [{ size: '8 MiB', filled: '2 MiB', seed: 8 }] },
        ],
      },
    ],
  })
})

afterEach(async () => {
  lab.control.clearFaults()
  await Promise.all(open.splice(0).map(client => client.close()))
})

afterAll(async () => {
  await lab?.stop()
})

describe.each(['json-rpc', 'xml-rpc'] as const)('over %s', transport => {
  it('reads typed records with numbers and XAPI datetimes whatever the transport', async () => {
    const client = await connect({ transport })
    expect(client.url).toBe(pool().url)
    const vms = await client.getAllRecords('VM')
    const names = [...vms.values()].filter(vm => !vm.is_control_domain && !vm.is_a_template).map(vm => vm.name_label)
    expect(names).toEqual(expect.arrayContaining(['vm1', 'vm2']))
    const vm1 = await vmByName(client, 'vm1')
    const record = await client.getRecord('VM', vm1)
    expect(record.power_state).toBe('Halted')
    expect(typeof record.memory_static_max).toBe('number')
    expect(record.snapshot_time).toBe('19700101T00:00:00Z')
    expect(isNullRef(record.snapshot_of)).toBe(true)
    const vbd = await client.getRecord('VBD', record.VBDs[0]!)
    const vdi = await client.getRecord('VDI', vbd.VDI)
    expect(vdi.virtual_size).toBe(16 * 1024 * 1024)
    expect(await client.getByUuid('VDI', vdi.uuid)).toBe(vbd.VDI)
    expect(client.poolRef.startsWith('OpaqueRef:')).toBe(true)
  })

  it('reports the server error code and params exactly, with the method', async () => {
    const client = await connect({ transport })
    const bogus = 'OpaqueRef:00000000-0000-0000-0000-000000000000' as Ref<'VM'>
    const error = await client.getRecord('VM', bogus).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(XapiError)
    expect(error).toMatchObject({
      code: 'XAPI_HANDLE_INVALID',
      xapiCode: 'HANDLE_INVALID',
      params: ['VM', bogus],
      method: 'VM.get_record',
    })
    await expect(client.getByUuid('VM', '00000000-0000-0000-0000-00000000dead')).rejects.toMatchObject({
      xapiCode: 'UUID_INVALID',
      params: ['VM', '00000000-0000-0000-0000-00000000dead'],
    })
    const vm1 = await vmByName(client, 'vm1')
    await client.call('VM.add_to_other_config', [vm1, `dup-${transport}`, 'a'])
    await expect(client.call('VM.add_to_other_config', [vm1, `dup-${transport}`, 'b'])).rejects.toMatchObject({
      xapiCode: 'MAP_DUPLICATE_KEY',
      params: ['VM', 'other_config', vm1, `dup-${transport}`],
      method: 'VM.add_to_other_config',
    })
  })

  it('runs an async call to completion through its task and returns the parsed result', async () => {
    const client = await connect({ transport })
    const vm1 = await vmByName(client, 'vm1')
    const tasksBefore = (await client.getAllRecords('task')).size
    const snapshot = await snapshotVm(client, vm1, `snap-${transport}`)
    const record = await client.getRecord('VM', snapshot)
    expect(record.is_a_snapshot).toBe(true)
    expect(record.snapshot_of).toBe(vm1)
    expect(record.snapshot_time).toMatch(/^\d{8}T\d\d:\d\d:\d\dZ$/)
    await destroyVm(client, snapshot)
    await expect(client.getRecord('VM', snapshot)).rejects.toMatchObject({ xapiCode: 'HANDLE_INVALID' })
    // the client destroys its tasks once they settle
    expect((await client.getAllRecords('task')).size).toBe(tasksBefore)
  })
})

describe('maps, tasks and errors', () => {
  it('updates a map entry in place and removes it', async () => {
    const client = await connect()
    const vm1 = await vmByName(client, 'vm1')
    await client.setMapEntry('VM', vm1, 'other_config', 'xen-cr:test', 'one')
    await client.setMapEntry('VM', vm1, 'other_config', 'xen-cr:test', 'two')
    expect((await client.getRecord('VM', vm1)).other_config['xen-cr:test']).toBe('two')
    await client.setMapEntry('VM', vm1, 'other_config', 'xen-cr:test', null)
    expect((await client.getRecord('VM', vm1)).other_config['xen-cr:test']).toBeUndefined()
  })

  it('fails an async call with the task error code, params and method', async () => {
    const client = await connect()
    const vm1 = await vmByName(client, 'vm1')
    lab.control.injectFault('p', {
      kind: 'error',
      method: 'VM.snapshot',
      code: 'SR_BACKEND_FAILURE_44',
      params: ['', 'no space', ''],
    })
    await expect(snapshotVm(client, vm1, 'doomed')).rejects.toMatchObject({
      xapiCode: 'SR_BACKEND_FAILURE_44',
      params: ['', 'no space', ''],
      method: 'VM.snapshot',
    })
  })

  it('reports a blocked operation as the server words it', async () => {
    const client = await connect()
    const vm1 = await vmByName(client, 'vm1')
    await blockOperation(client, vm1, 'start', 'replica: clone it')
    await expect(client.callAsync('VM.start', [vm1, false, false])).rejects.toMatchObject({
      xapiCode: 'OPERATION_BLOCKED',
      params: [vm1, 'replica: clone it'],
    })
    await client.setMapEntry('VM', vm1, 'blocked_operations', 'start', null)
  })
})

describe('session and coordinator', () => {
  it('logs in again once when the server forgets the session', async () => {
    const client = await connect()
    const before = client.sessionId
    // Log the session out behind the client's back, as a toolstack restart would.
    const res = await fetch(new URL('/jsonrpc', pool().url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session.logout', params: [before] }),
    })
    expect(res.status).toBe(200)
    await res.text()
    const vms = await client.getAllRecords('VM')
    expect(vms.size).toBeGreaterThan(0)
    expect(client.sessionId).not.toBe(before)
  })

  it('follows HOST_IS_SLAVE from a member to the coordinator', async () => {
    const member = pool().hosts[1]!
    expect(member.url).not.toBe(pool().url)
    const client = await connect({ url: member.url })
    expect(client.url).toBe(pool().url)
    expect((await client.getAllRecords('host')).size).toBe(2)
  })

  it('reconnects to the coordinator when a call answers HOST_IS_SLAVE, and retries the call', async () => {
    const client = await connect()
    const before = client.sessionId
    // What a call sees after the coordinator moved: the member names the new one.
    lab.control.injectFault('p', {
      kind: 'error',
      method: 'VM.get_all_records',
      code: 'HOST_IS_SLAVE',
      params: [pool().hosts[0]!.address],
      nth: 1,
    })
    const vms = await client.getAllRecords('VM')
    expect(vms.size).toBeGreaterThan(0)
    expect(client.url).toBe(pool().url)
    expect(client.sessionId).not.toBe(before)
  })

  it("works with xen-api's event loop on, and closes without lingering", async () => {
    const client = await connect({ watchEvents: true })
    const vm1 = await vmByName(client, 'vm1')
    const snapshot = await snapshotVm(client, vm1, 'with events')
    await destroyVm(client, snapshot)
    await client.close()
    await expect(client.getRecord('VM', vm1)).rejects.toMatchObject({ code: 'CLIENT_CLOSED' })
  })

  it('takes credentials from the URL and never keeps them in it', async () => {
    const url = new URL(pool().url)
    url.username = pool().user
    url.password = PASSWORD
    const client = await connect({ url: url.href, user: '', password: '' })
    expect(client.url).toBe(pool().url)
    expect(client.url).not.toContain(PASSWORD)
  })
})

describe('failures', () => {
  it('refuses a wrong password with POOL_AUTH_FAILED and no trace of the password', async () => {
    const wrong = `${PASSWORD}-wrong`
    const error = await XapiClient.connect({ url: pool().url, user: 'root', password: wrong }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConnectionError)
    expect(error).toMatchObject({ code: 'POOL_AUTH_FAILED', category: 'connection', url: pool().url })
    expect((error as Error).message).toContain(pool().url)
    expect(everything(error)).not.toContain(wrong)
  })

  it('reports an unreachable pool as POOL_UNREACHABLE naming the URL, without the password', async () => {
    const url = 'http://127.0.0.1:9'
    const error = await XapiClient.connect({ url, user: 'root', password: PASSWORD }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'POOL_UNREACHABLE', category: 'connection' })
    expect((error as Error).message).toContain('127.0.0.1:9')
    expect(everything(error)).not.toContain(PASSWORD)
  })

  it('keeps the password out of call errors, dropped connections and timeouts', async () => {
    const client = await connect()
    const vm1 = await vmByName(client, 'vm1')
    lab.control.injectFault('p', { kind: 'drop', method: 'VM.add_tags', nth: 1 })
    const dropped = await client.call('VM.add_tags', [vm1, 'x']).catch((e: unknown) => e)
    expect(dropped).toBeInstanceOf(XenCrError)
    expect(dropped).toMatchObject({ code: 'POOL_UNREACHABLE' })
    const bad = await client.call('VM.get_record', ['OpaqueRef:nope']).catch((e: unknown) => e)
    for (const error of [dropped, bad]) expect(everything(error)).not.toContain(PASSWORD)
  })

  it('times out a call that does not answer in time', async () => {
    const client = await connect()
    lab.control.injectFault('p', { kind: 'latency', method: 'VM.get_all_records', ms: 3_000 })
    await expect(client.getAllRecords('VM', { timeoutMs: 100 })).rejects.toMatchObject({ code: 'CALL_TIMEOUT' })
  })

  it('aborts a pending call and an async call through their signal', async () => {
    const client = await connect()
    lab.control.injectFault('p', { kind: 'latency', method: 'VM.get_all_records', ms: 3_000 })
    const controller = new AbortController()
    const pending = client.getAllRecords('VM', { signal: controller.signal })
    controller.abort()
    await expect(pending).rejects.toBeInstanceOf(AbortedError)

    lab.control.clearFaults()
    const vm1 = await vmByName(client, 'vm1')
    lab.control.injectFault('p', { kind: 'latency', method: 'VM.clone', ms: 3_000 })
    const second = new AbortController()
    const clone = cloneVm(client, vm1, 'aborted', { signal: second.signal })
    setImmediate(() => second.abort())
    await expect(clone).rejects.toBeInstanceOf(AbortedError)
  })

  it('fails every call after close with CLIENT_CLOSED', async () => {
    const client = await XapiClient.connect({ url: pool().url, user: pool().user, password: pool().password })
    await client.close()
    await expect(client.getAllRecords('VM')).rejects.toMatchObject({ code: 'CLIENT_CLOSED' })
    expect(NULL_REF).toBe('OpaqueRef:NULL')
  })
})
