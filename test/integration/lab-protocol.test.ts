/**
 * The lab's protocol as a real XAPI host speaks it (reference §1, §2, §4.7, §8): exact content
 * types and CORS headers, HTTP 500 HTML for unparsable bodies, the dispatch order (parameter
 * count before session, session before unknown method), aliases, Async.*, HOST_IS_SLAVE,
 * event.from tokens with add/mod/del, task results as XML strings.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Lab } from '../../src/lab/start.js'
import { startTempLab } from '../helpers/lab.js'
import { awaitTask, failure, login, ok, post } from './lab-rpc.js'

let lab: Lab
let url: string
let session: string

beforeAll(async () => {
  lab = await startTempLab({
    pools: [
      {
        name: 'p',
        hosts: ['h1', 'h2'],
        users: [{ user: 'root', password: 'secret' }],
        srs: [{ name: 'sr', shared: true }],
        vms: [{ name: 'vm1', powerState: 'Running', disks: [{ size: '4 MiB', filled: '2 MiB' }] }],
      },
    ],
  })
  url = lab.pools[0]!.url
  session = await login(lab.pools[0]!)
})

afterAll(async () => {
  await lab?.stop()
})

const xmlCall = (method: string, ...params: string[]): string =>
  `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>${params.map(p => `<param><value>${p}</value></param>`).join('')}</params></methodCall>`

describe('HTTP framing', () => {
  it('answers JSON-RPC with exactly application/json, CORS headers and an exact content-length', async () => {
    const response = await post(
      url,
      '/jsonrpc',
      JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'VM.get_all', params: [session] }),
      'application/json',
    )
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('application/json')
    expect(response.headers.get('access-control-allow-origin')).toBe('*')
    expect(response.headers.get('access-control-allow-headers')).toBe('X-Requested-With')
    expect(Number(response.headers.get('content-length'))).toBe(Buffer.byteLength(response.text))
    expect(response.text).toMatch(/^\{"jsonrpc":"2.0","result":\["OpaqueRef:[^"]+"(,"OpaqueRef:[^"]+")*\],"id":7\}$/)
  })

  it('answers XML-RPC on / and on any other POST path with text/xml and API errors as HTTP 200', async () => {
    for (const path of ['/', '/xmlrpc', '/RPC2']) {
      const response = await post(url, path, xmlCall('VM.get_record', session, 'OpaqueRef:nope'))
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toBe('text/xml')
      expect(response.text).toBe(
        '<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data><value>HANDLE_INVALID</value><value>VM</value><value>OpaqueRef:nope</value></data></array></value></member></struct></value></param></params></methodResponse>',
      )
    }
  })

  it('answers unparsable bodies with HTTP 500 and an HTML page', async () => {
    for (const [path, body] of [
      ['/', '<methodCall><methodName>x'],
      ['/jsonrpc', '{"jsonrpc":"2.0","id":null,"method":"x","params":[]}'],
      ['/jsonrpc', 'nope'],
    ] as const) {
      const response = await post(url, path, body)
      expect(response.status).toBe(500)
      expect(response.headers.get('content-type')).toBe('text/html')
      expect(response.text).toContain('HTTP 500 internal server error')
    }
  })

  it('answers system.listMethods without the Status wrapper and without Async. names', async () => {
    const response = await post(url, '/', xmlCall('system.listMethods'))
    expect(
      response.text.startsWith('<?xml version="1.0"?><methodResponse><params><param><value><array><data><value>'),
    ).toBe(true)
    expect(response.text).toContain('<value>VM.get_all_records</value>')
    expect(response.text).toContain('<value>VM.snapshot</value>')
    expect(response.text).not.toContain('Async.')
    expect(response.text).not.toContain('<value>session.get_all_records</value>')
  })

  it('answers a CORS preflight', async () => {
    const response = await fetch(new URL('/jsonrpc', url), { method: 'OPTIONS' })
    expect(response.status).toBe(200)
    expect(response.headers.get('access-control-allow-origin')).toBe('*')
  })
})

describe('dispatch order and errors', () => {
  it('checks the parameter count before the session', async () => {
    expect(await failure(url, 'VM.get_record', 'OpaqueRef:not-a-session')).toEqual([
      'MESSAGE_PARAMETER_COUNT_MISMATCH',
      ['VM.get_record', '1', '0'],
    ])
    expect(await failure(url, 'Async.VM.snapshot', session, 'x')).toEqual([
      'MESSAGE_PARAMETER_COUNT_MISMATCH',
      ['VM.snapshot', '2', '1'],
    ])
    expect(await failure(url, 'session.login_with_password', 'a', 'b', 'c', 'd', 'e')).toEqual([
      'MESSAGE_PARAMETER_COUNT_MISMATCH',
      ['session.login_with_password', '2', '5'],
    ])
    expect(await failure(url, 'VM.get_all', 'OpaqueRef:not-a-session')).toEqual([
      'SESSION_INVALID',
      ['OpaqueRef:not-a-session'],
    ])
  })

  it('validates the session before reporting an unknown method that has parameters', async () => {
    expect(await failure(url, 'VM.frobnicate')).toEqual(['MESSAGE_METHOD_UNKNOWN', ['VM.frobnicate']])
    expect(await failure(url, 'VM.frobnicate', 'OpaqueRef:x')).toEqual(['SESSION_INVALID', ['OpaqueRef:x']])
    expect(await failure(url, 'VM.frobnicate', session)).toEqual(['MESSAGE_METHOD_UNKNOWN', ['VM.frobnicate']])
  })

  it('accepts Class_message aliases, answers MESSAGE_REMOVED and refuses Async. of sync-only messages', async () => {
    expect(await ok<string[]>(url, 'VM_get_all', session)).toEqual(await ok<string[]>(url, 'VM.get_all', session))
    const [vm] = await ok<string[]>(url, 'VM.get_by_name_label', session, 'vm1')
    expect(await failure(url, 'VM.snapshot_with_quiesce', session, vm, 'q')).toEqual(['MESSAGE_REMOVED', []])
    expect(await failure(url, 'Async.VM.get_all', session)).toEqual([
      'Fault',
      ['No async mode for this operation (rpc: Async.VM.get_all)'],
    ])
  })

  it('fails logins with the user and PAM text, and sends logins on a member to the master', async () => {
    expect(await failure(url, 'session.login_with_password', 'root', 'wrong')).toEqual([
      'SESSION_AUTHENTICATION_FAILED',
      ['root', 'Authentication failure'],
    ])
    const [master, member] = lab.pools[0]!.hosts
    expect(await failure(member!.url, 'session.login_with_password', 'root', 'secret')).toEqual([
      'HOST_IS_SLAVE',
      [master!.address],
    ])
    expect(await failure(member!.url, 'VM.get_all', session)).toEqual(['HOST_IS_SLAVE', [master!.address]])
    const other = await ok<string>(url, 'session.login_with_password', 'root', 'secret', '1.1', 'test')
    await ok(url, 'session.logout', other)
    expect(await failure(url, 'VM.get_all', other)).toEqual(['SESSION_INVALID', [other]])
  })

  it('refuses string parameters that are not UTF-8 with INVALID_VALUE', async () => {
    const [vm] = await ok<string[]>(url, 'VM.get_by_name_label', session, 'vm1')
    const [before, after] = xmlCall('VM.set_name_label', session, vm!, 'PLACEHOLDER').split('PLACEHOLDER') as [
      string,
      string,
    ]
    const body = Buffer.concat([Buffer.from(before), Buffer.from([0x62, 0xff, 0x61]), Buffer.from(after)])
    const response = await fetch(new URL('/', url), { method: 'POST', body })
    const text = await response.text()
    expect(text).toContain('<value>INVALID_VALUE</value><value>Invalid UTF-8 string in parameter</value>')
    expect(await ok(url, 'VM.get_name_label', session, vm)).toBe('vm1')
    expect(
      await ok<string>(url, 'host.get_servertime', session, (await ok<string[]>(url, 'host.get_all', session))[0]),
    ).toMatch(/^\d{8}T\d{2}:\d{2}:\d{2}Z$/)
  })

  it('unmarshals parameters as XAPI does: int strings accepted, bools must be booleans, map keys checked', async () => {
    const [vm] = await ok<string[]>(url, 'VM.get_by_name_label', session, 'vm1')
    await ok(url, 'VM.set_user_version', session, vm, '5')
    expect(await ok(url, 'VM.get_user_version', session, vm)).toBe(5)
    expect((await failure(url, 'VM.set_is_a_template', session, vm, 'true'))[0]).toBe('INTERNAL_ERROR')
    expect((await failure(url, 'VM.add_to_blocked_operations', session, vm, 'fly', 'x'))[0]).toBe('INTERNAL_ERROR')
    expect(await failure(url, 'VM.get_by_uuid', session, 'no-such-uuid')).toEqual([
      'UUID_INVALID',
      ['VM', 'no-such-uuid'],
    ])
    await ok(url, 'VM.add_to_other_config', session, vm, 'k', 'v')
    expect(await failure(url, 'VM.add_to_other_config', session, vm, 'k', 'w')).toEqual([
      'MAP_DUPLICATE_KEY',
      ['VM', 'other_config', vm, 'k'],
    ])
    await ok(url, 'VM.remove_from_other_config', session, vm, 'k')
    await ok(url, 'VM.remove_from_other_config', session, vm, 'k')
    await ok(url, 'VM.add_tags', session, vm, 't1')
    expect(await ok(url, 'VM.get_tags', session, vm)).toEqual(['t1'])
  })
})

describe('events and tasks', () => {
  it('returns everything as add for an empty token, then add/mod/del since a token', async () => {
    const first = await ok<{
      events: { class: string; operation: string; ref: string; snapshot?: unknown }[]
      token: string
      valid_ref_counts: Record<string, number>
    }>(url, 'event.from', session, ['*'], '', 1)
    expect(first.token).toMatch(/^\d{20},\d{20}$/)
    expect(first.events.every(e => e.operation === 'add')).toBe(true)
    expect(new Set(first.events.map(e => e.class))).toEqual(
      new Set(['pool', 'host', 'sr', 'pbd', 'vm', 'vdi', 'vbd', 'session']),
    )
    expect(first.valid_ref_counts['task']).toBe(0)
    expect(first.valid_ref_counts['vm']).toBe(3)

    const [pool] = await ok<string[]>(url, 'pool.get_all', session)
    const injected = await ok<string>(url, 'event.inject', session, 'pool', pool)
    const [srRef] = await ok<string[]>(url, 'SR.get_all', session)
    const created = await ok<string>(url, 'VDI.create', session, {
      SR: srRef,
      virtual_size: '1048576',
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
      name_label: 'temp',
    })
    const live = await ok<string>(url, 'VDI.create', session, {
      SR: srRef,
      virtual_size: 1048576,
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
      name_label: 'kept',
    })
    await ok(url, 'VDI.destroy', session, created)
    const since = await ok<{
      events: { class: string; operation: string; ref: string; snapshot?: Record<string, unknown> }[]
      token: string
    }>(url, 'event.from', session, ['pool', 'VDI'], injected, 1)
    const byRef = new Map(since.events.map(e => [e.ref, e]))
    expect(byRef.get(pool!)?.operation).toBe('mod')
    expect(byRef.get(live)?.operation).toBe('add')
    expect(byRef.get(live)?.snapshot?.['virtual_size']).toBe(2 * 1024 * 1024)
    // created and deleted inside the window: nothing
    expect(byRef.has(created)).toBe(false)

    await ok(url, 'VDI.destroy', session, live)
    const after = await ok<{ events: { operation: string; ref: string; snapshot?: unknown }[] }>(
      url,
      'event.from',
      session,
      ['vdi'],
      since.token,
      1,
    )
    expect(after.events).toEqual([
      { id: expect.any(String) as unknown, timestamp: '0.0', class: 'vdi', operation: 'del', ref: live },
    ])
    expect(await failure(url, 'event.from', session, ['*'], 'garbage', 1)).toEqual([
      'EVENT_FROM_TOKEN_PARSE_FAILURE',
      ['garbage'],
    ])
    expect(await failure(url, 'event.inject', session, 'vm', 'OpaqueRef:x')).toEqual([
      'HANDLE_INVALID',
      ['vm', 'OpaqueRef:x'],
    ])
  })

  it('sends valid_ref_counts as <i4> over XML-RPC, including task', async () => {
    const response = await post(
      url,
      '/',
      xmlCall('event.from', session, '<array><data><value>pool</value></data></array>', '', '<double>0.1</double>'),
    )
    expect(response.text).toMatch(/<member><name>task<\/name><value><i4>\d+<\/i4><\/value><\/member>/)
    expect(response.text).toMatch(/<member><name>vm<\/name><value><i4>\d+<\/i4><\/value><\/member>/)
    expect(response.text).toMatch(/<member><name>token<\/name><value>\d{20},\d{20}<\/value><\/member>/)
  })

  it('completes Async tasks later with the XML-RPC encoding of the result as a string', async () => {
    const [vm] = await ok<string[]>(url, 'VM.get_by_name_label', session, 'vm1')
    const task = await ok<string>(url, 'Async.VM.snapshot', session, vm, 'snap')
    expect(task).toMatch(/^OpaqueRef:/)
    const record = await awaitTask(url, session, task)
    expect(record['status']).toBe('success')
    expect(record['progress']).toBe(1)
    expect(record['name_label']).toBe('Async.VM.snapshot')
    expect(record['result']).toMatch(/^<value>OpaqueRef:[0-9a-f-]{36}<\/value>$/)
    const snapshot = /<value>(.*)<\/value>/.exec(record['result'] as string)![1]!
    expect(await ok(url, 'VM.get_is_a_snapshot', session, snapshot)).toBe(true)
    await ok(url, 'task.destroy', session, task)
    expect(await failure(url, 'task.get_record', session, task)).toEqual(['HANDLE_INVALID', ['task', task]])

    const failing = await ok<string>(url, 'Async.VM.clone', session, vm, 'c')
    const failed = await awaitTask(url, session, failing)
    expect([failed['status'], failed['error_info']]).toEqual([
      'failure',
      ['VM_BAD_POWER_STATE', vm, 'halted', 'running'],
    ])
  })

  it('cancels a running Async operation: the task ends cancelled with TASK_CANCELLED', async () => {
    const [vm] = await ok<string[]>(url, 'VM.get_by_name_label', session, 'vm1')
    const snapshotsBefore = await ok<string[]>(url, 'VM.get_snapshots', session, vm)
    // a long latency keeps the operation pending until the cancel arrives
    lab.control.injectFault('p', { kind: 'latency', method: 'VM.snapshot', ms: 600_000 })
    try {
      const task = await ok<string>(url, 'Async.VM.snapshot', session, vm, 'never')
      expect(await ok(url, 'task.get_status', session, task)).toBe('pending')
      expect(await ok(url, 'task.get_allowed_operations', session, task)).toEqual(['cancel'])
      await ok(url, 'task.cancel', session, task)
      const record = await awaitTask(url, session, task)
      expect([record['status'], record['error_info']]).toEqual(['cancelled', ['TASK_CANCELLED', task]])
      expect(await ok<string[]>(url, 'VM.get_snapshots', session, vm)).toEqual(snapshotsBefore)
    } finally {
      lab.control.clearFaults('p')
    }
  })

  it('delays many calls at once under a latency fault without warning of a listener leak', async () => {
    const warnings: Error[] = []
    const onWarning = (warning: Error): void => void warnings.push(warning)
    process.on('warning', onWarning)
    lab.control.injectFault('p', { kind: 'latency', method: 'VM.get_by_name_label', ms: 200 })
    try {
      // each delayed call waits on the pool's closing signal; node warns past 10 listeners
      const answers = await Promise.all(
        Array.from({ length: 16 }, () => ok<string[]>(url, 'VM.get_by_name_label', session, 'vm1')),
      )
      expect(answers.every(refs => refs.length === 1)).toBe(true)
      // a warning is emitted on the next tick
      await new Promise(resolve => setImmediate(resolve))
      expect(warnings.filter(w => w.name === 'MaxListenersExceededWarning').map(w => w.message)).toEqual([])
    } finally {
      lab.control.clearFaults('p')
      process.off('warning', onWarning)
    }
  })

  it('records cancel and destroy requests on a pending task', async () => {
    const task = await ok<string>(url, 'task.create', session, 'transfer', '')
    await ok(url, 'task.cancel', session, task)
    expect(Object.values(await ok<Record<string, string>>(url, 'task.get_current_operations', session, task))).toEqual([
      'cancel',
    ])
    await ok(url, 'task.set_progress', session, task, 0.5)
    expect(await ok(url, 'task.get_progress', session, task)).toBe(0.5)
    await ok(url, 'task.destroy', session, task)
    expect(await ok(url, 'task.get_status', session, task)).toBe('pending')
  })
})

describe('legacy events', () => {
  it('delivers changes of registered classes through event.next, with obj_uuid, and refuses unregistered sessions', async () => {
    const other = await ok<string>(url, 'session.login_with_password', 'root', 'secret')
    expect(await failure(url, 'event.next', other)).toEqual(['SESSION_NOT_REGISTERED', [other]])
    await ok(url, 'event.register', other, ['network'])
    const network = await ok<string>(url, 'network.create', session, {
      name_label: 'legacy',
      name_description: '',
      other_config: {},
    })
    const uuid = await ok<string>(url, 'network.get_uuid', session, network)
    const events = await ok<
      { class: string; operation: string; ref: string; obj_uuid: string; snapshot?: Record<string, unknown> }[]
    >(url, 'event.next', other)
    expect(events.map(e => [e.class, e.operation, e.ref, e.obj_uuid, e.snapshot?.['name_label']])).toEqual([
      ['network', 'add', network, uuid, 'legacy'],
    ])
    await ok(url, 'network.destroy', session, network)
    expect(
      (await ok<{ operation: string; obj_uuid: string; snapshot?: unknown }[]>(url, 'event.next', other)).map(e => [
        e.operation,
        e.obj_uuid,
        e.snapshot,
      ]),
    ).toEqual([['del', uuid, undefined]])
  })
})
