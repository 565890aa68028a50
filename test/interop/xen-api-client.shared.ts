/**
 * The scenario both xen-api transport tests run against a real `xen-cr lab --json` process
 * (the built binary, as operators start it): the real Vates client,
 * event watching on, logs in, lists the spec's VMs, sees an object created by another session
 * arrive through events, runs Async.VM.snapshot to completion and gets exact error codes.
 * A lab that got any of the wire details of reference §7 wrong fails here: the client either
 * silently falls back to XML-RPC (checked), cannot parse answers, or never sees a task finish.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { createClient, type Xapi, type XenApiError } from 'xen-api'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { LabPoolInfo } from '../../src/lab/start.js'
import type { LabSpec } from '../../src/lab/spec.js'
import { builtBinary } from '../helpers/built.js'
import { makeTempDir } from '../helpers/tmp.js'

const SPEC: LabSpec = {
  pools: [
    {
      name: 'src',
      hosts: ['src-a', 'src-b'],
      srs: [{ name: 'Shared', type: 'nfs', shared: true }],
      networks: [{ name: 'eth0 net' }, { name: 'VLAN 7', vlan: 7 }],
      vms: [
        {
          name: 'alpha',
          powerState: 'Running',
          disks: [{ size: '8 MiB', filled: '4 MiB', seed: 7 }],
          networks: ['eth0 net'],
        },
        { name: 'beta', disks: [{ size: '4 MiB' }] },
      ],
    },
  ],
}

interface Objects {
  on(
    event: 'add' | 'update' | 'remove',
    listener: (objects: Record<string, { $type: string; $ref: string } & Record<string, unknown>>) => void,
  ): void
}

async function caught(promise: Promise<unknown>): Promise<XenApiError> {
  try {
    await promise
  } catch (error) {
    return error as XenApiError
  }
  throw new Error('expected the call to fail')
}

/** Starts `xen-cr lab --json` and resolves with its one line once every host listens. */
async function startLabProcess(
  dir: string,
): Promise<{ child: ChildProcess; pools: LabPoolInfo[]; exited: Promise<number | null> }> {
  const specFile = join(dir, 'spec.json')
  await writeFile(specFile, JSON.stringify(SPEC))
  const child = spawn(
    process.execPath,
    [builtBinary(), 'lab', '--json', '--spec', specFile, '--dir', join(dir, 'lab'), '--login-delay', '0'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve)
    void exited.then(code => reject(new Error(`xen-cr lab exited with ${code} before printing its pools`)))
  })
  return { child, pools: (JSON.parse(line) as { pools: LabPoolInfo[] }).pools, exited }
}

export function clientScenario(transport: 'json-rpc' | 'xml-rpc'): void {
  let lab: { child: ChildProcess; pools: LabPoolInfo[]; exited: Promise<number | null> }
  let tmp: { path: string; remove: () => Promise<void> }
  let xapi: Xapi

  beforeAll(async () => {
    tmp = await makeTempDir()
    lab = await startLabProcess(tmp.path)
    const pool = lab.pools[0]!
    // Connect to the member: the client must follow HOST_IS_SLAVE to the master.
    xapi = createClient({
      url: pool.hosts[1]!.url,
      auth: { user: pool.user, password: pool.password },
      transport,
      watchEvents: true,
      allowUnauthorized: false,
    })
    await xapi.connect()
    await xapi.objectsFetched
  })

  afterAll(async () => {
    await xapi?.disconnect()
    if (lab !== undefined) {
      lab.child.kill('SIGTERM')
      await lab.exited
    }
    await tmp?.remove()
  })

  it('logs in through the member, follows HOST_IS_SLAVE to the master and lists the spec VMs', async () => {
    const pool = lab.pools[0]!
    expect((xapi as unknown as { _url: { hostname: string } })._url.hostname).toBe(new URL(pool.url).hostname)
    const records = (await xapi.call('VM.get_all_records')) as Record<string, Record<string, unknown>>
    const names = Object.values(records)
      .filter(vm => vm['is_control_domain'] === false && vm['is_a_snapshot'] === false)
      .map(vm => vm['name_label'])
      .sort()
    expect(names).toEqual(['alpha', 'beta'])
    // XML-RPC turns datetimes into Dates, JSON-RPC keeps XAPI's string: proves which transport ran.
    const alpha = Object.values(records).find(vm => vm['name_label'] === 'alpha')!
    if (transport === 'json-rpc') expect(alpha['snapshot_time']).toBe('19700101T00:00:00Z')
    else expect(alpha['snapshot_time']).toBeInstanceOf(Date)
    expect(alpha['VCPUs_max']).toBe(transport === 'json-rpc' ? 1 : '1')
  })

  it('sees an object created by another session arrive through events', async () => {
    const pool = lab.pools[0]!
    const arrived = new Promise<string>(resolve => {
      ;(xapi as unknown as { objects: Objects }).objects.on('add', objects => {
        for (const object of Object.values(objects))
          if (object.$type === 'network' && object['name_label'] === `made elsewhere ${transport}`) resolve(object.$ref)
      })
    })
    const other = createClient({
      url: pool.url,
      auth: { user: pool.user, password: pool.password },
      transport,
      watchEvents: false,
    })
    await other.connect()
    const ref = (await other.call('network.create', {
      name_label: `made elsewhere ${transport}`,
      name_description: '',
      other_config: {},
    })) as string
    await other.disconnect()
    expect(await arrived).toBe(ref)
  })

  it('runs Async.VM.snapshot to completion and sees the snapshot', async () => {
    const [vmRef] = (await xapi.call('VM.get_by_name_label', 'alpha')) as string[]
    const snapshotRef = (await xapi.callAsync('VM.snapshot', vmRef, 'alpha snap')) as string
    expect(snapshotRef).toMatch(/^OpaqueRef:[0-9a-f-]{36}$/)
    const snapshot = (await xapi.call('VM.get_record', snapshotRef)) as Record<string, unknown>
    expect(snapshot['is_a_snapshot']).toBe(true)
    expect(snapshot['is_a_template']).toBe(true)
    expect(snapshot['snapshot_of']).toBe(vmRef)
    expect(snapshot['name_label']).toBe('alpha snap')
    const vm = (await xapi.call('VM.get_record', vmRef)) as Record<string, unknown>
    expect(vm['snapshots']).toContain(snapshotRef)
    expect(vm['current_operations']).toEqual({})
  })

  it('gets the exact code and params of bad calls', async () => {
    const bad = 'OpaqueRef:00000000-0000-0000-0000-000000000000'
    const handle = await caught(xapi.call('VM.get_record', bad))
    expect([handle.code, handle.params]).toEqual(['HANDLE_INVALID', ['VM', bad]])
    const count = await caught(xapi.call('VM.snapshot', bad))
    expect([count.code, count.params]).toEqual(['MESSAGE_PARAMETER_COUNT_MISMATCH', ['VM.snapshot', '2', '1']])
    const [vmRef] = (await xapi.call('VM.get_by_name_label', 'alpha')) as string[]
    await xapi.call('VM.add_to_blocked_operations', vmRef, 'start', 'protected replica')
    const blocked = await caught(xapi.call('VM.start', vmRef, false, false))
    // Blocked operations are checked before the power state (alpha is running).
    expect([blocked.code, blocked.params]).toEqual(['OPERATION_BLOCKED', [vmRef, 'protected replica']])
    const duplicate = await caught(xapi.call('VM.add_to_blocked_operations', vmRef, 'start', 'again'))
    expect([duplicate.code, duplicate.params]).toEqual([
      'MAP_DUPLICATE_KEY',
      ['VM', 'blocked_operations', vmRef, 'start'],
    ])
    const power = await caught(
      xapi.call('VM.clean_shutdown', ((await xapi.call('VM.get_by_name_label', 'beta')) as string[])[0]),
    )
    expect(power.code).toBe('VM_BAD_POWER_STATE')
    expect(power.params.slice(1)).toEqual(['running', 'halted'])
  })

  it('stops cleanly on SIGTERM', async () => {
    await xapi.disconnect()
    lab.child.kill('SIGTERM')
    expect(await lab.exited).toBe(0)
  })
}
