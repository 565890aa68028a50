/**
 * `xen-cr vms|srs|networks <pool>` against the lab: the uuids printed are the pool's own (read
 * back through the client), with the fields a job needs; what they print is enough to create a
 * job without any other tool.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import type { Lab } from '../../src/lab/start.js'
import type { LabSpec } from '../../src/lab/spec.js'
import type { XapiClient } from '../../src/xapi/client.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'

const MiB = 1024 * 1024

const SPEC: LabSpec = {
  pools: [
    {
      name: 'src',
      hosts: ['h1', 'h2'],
      srs: [
        { name: 'Local storage', size: '1 GiB' },
        { name: 'NFS', type: 'nfs', shared: true, size: '2 GiB' },
      ],
      defaultSr: 'NFS',
      networks: [{ name: 'Pool-wide network associated with eth0' }, { name: 'DMZ', vlan: 42, mtu: 9000 }],
      vms: [
        {
          name: 'web',
          powerState: 'Running',
          tags: ['prod', 'cr'],
          disks: [
            { name: 'root', size: '16 MiB', filled: '1 MiB', sr: 'NFS' },
            { name: 'data', size: '8 MiB', sr: 'Local storage' },
          ],
          networks: ['DMZ'],
        },
        { name: 'db', disks: [] },
      ],
    },
  ],
}

let lab: Lab
let client: XapiClient

beforeAll(async () => {
  lab = await startTempLab(SPEC)
  client = await connectLabPool(labPool(lab, 'src'))
})
afterAll(async () => {
  await client?.close()
  await lab?.stop()
})

async function cli(args: readonly string[]) {
  const stdout = new CaptureStream()
  const stderr = new CaptureStream()
  const code = await run(['--config', lab.configPath, ...args], { stdout, stderr, env: {}, cwd: lab.dir })
  return { code, lines: stdout.lines, err: stderr.text }
}

async function json<T>(args: readonly string[]): Promise<T> {
  const result = await cli(['--json', ...args])
  expect(result.code).toBe(0)
  expect(result.lines).toHaveLength(1)
  return JSON.parse(result.lines[0]!) as T
}

async function uuidOf(cls: 'VM' | 'SR' | 'network', name: string): Promise<string> {
  const found = [...(await client.getAllRecords(cls)).values()].find(record => record.name_label === name)
  if (found === undefined) throw new Error(`no ${cls} ${name}`)
  return found.uuid
}

describe('inventory', () => {
  it('vms: the VMs with their uuid, power state, tags and disks (no templates, snapshots or dom0)', async () => {
    const event = await json<{ kind: string; pool: string; vms: unknown[] }>(['vms', 'src'])
    expect(event).toMatchObject({ kind: 'vm-inventory', pool: 'src' })
    expect(event.vms).toEqual([
      { uuid: await uuidOf('VM', 'db'), name: 'db', powerState: 'Halted', tags: [], disks: 0, diskBytes: 0 },
      {
        uuid: await uuidOf('VM', 'web'),
        name: 'web',
        powerState: 'Running',
        tags: ['prod', 'cr'],
        disks: 2,
        diskBytes: 24 * MiB,
      },
    ])
    const table = await cli(['vms', 'src'])
    expect(table.lines[0]).toMatch(/^NAME\s+UUID\s+POWER\s+DISKS\s+SIZE\s+TAGS$/)
    expect(table.lines[2]).toMatch(
      new RegExp(`^web\\s+${await uuidOf('VM', 'web')}\\s+Running\\s+2\\s+24 MiB\\s+prod, cr$`),
    )
  })

  it('srs: type, sharing, size, free space and the default SR', async () => {
    const event = await json<{
      srs: { name: string; type: string; shared: boolean; size: number; free: number; default: boolean; uuid: string }[]
    }>(['srs', 'src'])
    const nfs = event.srs.find(sr => sr.name === 'NFS')
    const local = event.srs.find(sr => sr.name === 'Local storage')
    expect(nfs).toMatchObject({
      uuid: await uuidOf('SR', 'NFS'),
      type: 'nfs',
      shared: true,
      default: true,
      size: 2048 * MiB,
    })
    expect(local).toMatchObject({ type: 'ext', shared: false, default: false, size: 1024 * MiB })
    const records = [...(await client.getAllRecords('SR')).values()]
    for (const sr of [nfs!, local!]) {
      const record = records.find(r => r.uuid === sr.uuid)!
      expect(sr.free).toBe(record.physical_size - record.physical_utilisation)
    }
    const table = await cli(['srs', 'src'])
    expect(table.lines.find(line => line.startsWith('NFS'))).toMatch(/\sdefault$/)
  })

  it('networks: bridge, VLAN and MTU', async () => {
    const event = await json<{
      networks: { name: string; vlan?: number; mtu: number; bridge: string; uuid: string }[]
    }>(['networks', 'src'])
    const dmz = event.networks.find(n => n.name === 'DMZ')
    expect(dmz).toMatchObject({ uuid: await uuidOf('network', 'DMZ'), vlan: 42, mtu: 9000 })
    expect(dmz?.bridge).not.toBe('')
    expect(event.networks.find(n => n.name.startsWith('Pool-wide'))).not.toHaveProperty('vlan')
    const table = await cli(['networks', 'src'])
    expect(table.lines.find(line => line.startsWith('DMZ'))).toMatch(/\s42\s+9000$/)
  })

  it('refuses a pool that is not configured', async () => {
    const result = await cli(['vms', 'nowhere'])
    expect(result.code).toBe(2)
    expect(result.err).toMatch(/\[POOL_NOT_CONFIGURED\]/)
  })
})
