/**
 * XenServer 6.5, the oldest release continuous replication supports (issue 10): both pools of
 * the lab emulate it (`"xapiVersion": "6.5"`), so the client meets API 2.3, a `/jsonrpc` that
 * answers `text/xml` (xen-api falls back to XML-RPC, dates arrive as `dateTime.iso8601`), records
 * without the fields of later releases (no `domain_type`, `NVRAM`, `has_vendor_device`,
 * `network.purpose`…) and no `VDI.get_nbd_info`. A full and a delta pass, list, a seed and a
 * failover must all work there; without the client's graceful degradation a pass would send
 * `undefined` fields or call messages the host does not have.
 */
import { Xapi } from 'xen-api'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import { JobStore } from '../../src/jobs/job-store.js'
import type { Job } from '../../src/jobs/types.js'
import type { LabSpec } from '../../src/lab/spec.js'
import { isXapiError } from '../../src/errors.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { labPool } from '../helpers/lab.js'
import { makeTempDir } from '../helpers/tmp.js'
import {
  expectReplicaMatches,
  jobSnapshots,
  makeJob,
  replicas,
  SPEC,
  startFixture,
  type Fixture,
} from './replication-fixture.js'
import { handMadeCopy, manualSnapshot } from './seed-fixture.js'

const SPEC_65: LabSpec = { ...SPEC, pools: SPEC.pools.map(pool => ({ ...pool, xapiVersion: '6.5' })) }
const HOUR = 3_600_000

let f: Fixture
let tmp: { path: string; remove: () => Promise<void> }
let jobsFile: string
let job: Job

beforeAll(async () => {
  f = await startFixture(SPEC_65)
  tmp = await makeTempDir('xen-cr-xs65-')
  jobsFile = join(tmp.path, 'jobs.json')
  job = makeJob(f)
  await new JobStore(jobsFile).add(job)
})
afterAll(async () => {
  await f.close()
  await tmp.remove()
})

async function cli(args: readonly string[], now?: Date): Promise<{ code: number; events: Record<string, unknown>[] }> {
  const stdout = new CaptureStream()
  const stderr = new CaptureStream()
  const code = await run(['--config', f.lab.configPath, '--jobs-file', jobsFile, '--json', ...args], {
    stdout,
    stderr,
    env: {},
    cwd: f.lab.dir,
    ...(now === undefined ? {} : { now: () => now }),
  })
  const events = [...stdout.lines, ...stderr.lines].map(l => JSON.parse(l) as Record<string, unknown>)
  if (code !== 0) throw new Error(`xen-cr ${args.join(' ')} exited ${code}: ${JSON.stringify(events)}`)
  return { code, events }
}

const vmDone = (events: Record<string, unknown>[]): { status: string; mode: string } =>
  (events.find(e => e['kind'] === 'vm-done') as { result: { status: string; mode: string } }).result

describe('a XenServer 6.5 pool', () => {
  it('answers as 6.5: API 2.3, JSON-RPC labelled text/xml, none of the later fields and messages', async () => {
    const pool = labPool(f.lab, 'src')
    expect(pool.xapiVersion).toBe('6.5')
    const probe = await fetch(`${pool.url}/jsonrpc`, {
      method: 'POST',
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'session.login_with_password', params: ['x', 'y'] }),
    })
    expect(probe.headers.get('content-type')).toBe('text/xml')
    await probe.body?.cancel()

    // the real JS client falls back to XML-RPC, where datetimes are dateTime.iso8601 (JS Dates)
    const xapi = new Xapi({ url: pool.url, auth: { user: pool.user, password: pool.password }, watchEvents: false })
    await xapi.connect()
    const created = await xapi.call('task.create', 'xs65', '')
    const record = (await xapi.call('task.get_record', created)) as { created: unknown }
    expect(record.created).toBeInstanceOf(Date)
    await xapi.call('task.destroy', created)
    await xapi.disconnect()

    // system.listMethods (no session, as XAPI takes it) leaves out what 6.5 did not have
    const listed = await fetch(`${pool.url}/`, {
      method: 'POST',
      body: '<?xml version="1.0"?><methodCall><methodName>system.listMethods</methodName><params></params></methodCall>',
    })
    const methods = [...(await listed.text()).matchAll(/<value>([^<]*)<\/value>/g)].map(m => m[1])
    expect(methods).toContain('VM.snapshot')
    expect(methods).toContain('VM.get_record')
    expect(methods).not.toContain('VM.set_domain_type')
    expect(methods).not.toContain('VM.get_domain_type')
    expect(methods).not.toContain('VDI.get_nbd_info')

    const [host] = (await f.source.getAllRecords('host')).values()
    expect([host!.API_version_major, host!.API_version_minor, host!.software_version['product_version']]).toEqual([
      2,
      3,
      '6.5.0',
    ])
    const vm = await f.source.getRecord('VM', f.vmRef)
    for (const field of ['domain_type', 'NVRAM', 'has_vendor_device', 'hardware_platform_version', 'reference_label'])
      expect(vm).not.toHaveProperty(field)
    const [network] = (await f.source.getAllRecords('network')).values()
    expect(network).not.toHaveProperty('purpose')
    const [vdi] = (await f.source.getAllRecords('VDI')).keys()
    const error = await f.source.call('VDI.get_nbd_info', [vdi]).catch((e: unknown) => e)
    expect(isXapiError(error, 'MESSAGE_METHOD_UNKNOWN')).toBe(true)
  })

  it('takes a full then a delta pass, lists and verifies them (streamed, no NBD), seeds a hand-made copy and fails over', async () => {
    const t0 = new Date(Date.now() + HOUR)
    expect(vmDone((await cli(['run', 'nightly'], t0)).events)).toMatchObject({ status: 'success', mode: 'full' })
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [1], seed: 65 })
    const t1 = new Date(t0.getTime() + HOUR)
    expect(vmDone((await cli(['run', 'nightly'], t1)).events)).toMatchObject({ status: 'success', mode: 'delta' })
    const [newest] = (await replicas(f.target, job.id, f.vmUuid)).slice(-1)
    const [snapshot] = (await jobSnapshots(f.source, job.id, f.vmRef)).slice(-1)
    const hashes = await expectReplicaMatches(f, newest![0], snapshot![0])
    expect(hashes.replica).toEqual(hashes.snapshot)

    const listed = await cli(['list', 'nightly'], t1)
    const listing = listed.events.find(e => e['kind'] === 'replica-list') as {
      listings: { vms: { status: string; replicas: { chain: string }[] }[] }[]
    }
    expect(listing.listings[0]?.vms[0]?.status).toBe('ok')
    expect(listing.listings[0]?.vms[0]?.replicas.map(r => r.chain)).toEqual(['delta', 'full'])

    // verify: 6.5 has no NBD (VDI.get_nbd_info is later), so both sides stream their sampled
    // blocks from the export, and say so
    const verified = await cli(['verify', 'nightly', '--sample', '2'], t1)
    expect(verified.code).toBe(0)
    const nbdWarnings = verified.events.filter(e => e['kind'] === 'warning' && e['code'] === 'NBD_UNAVAILABLE')
    expect(nbdWarnings.length).toBeGreaterThanOrEqual(2)
    const verifiedVm = (
      verified.events.find(e => e['kind'] === 'verify-done') as {
        results: { status: string; disks: { equal: boolean; source: { via: string }; target: { via: string } }[] }[]
      }
    ).results[0]!
    expect(verifiedVm.status).toBe('equal')
    expect(verifiedVm.disks.length).toBeGreaterThan(0)
    for (const disk of verifiedVm.disks)
      expect([disk.equal, disk.source.via, disk.target.via]).toEqual([true, 'stream', 'stream'])

    // a second job seeded from a copy made by hand on the other SR: its first run is a delta
    const seeded: Job = {
      ...makeJob(f, { srs: [f.srs['Replica B']!] }),
      id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0065',
      name: 'seeded',
      schedules: [{ ...job.schedules[0]!, id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0066' }],
    }
    await new JobStore(jobsFile).add(seeded)
    const snap = await manualSnapshot(f)
    const copy = await handMadeCopy(f, snap.ref, f.srs['Replica B']!, tmp.path)
    const seed = await cli(['seed', '--job', 'seeded', '--snapshot', snap.uuid, '--target-vm', copy.uuid, '--verify'])
    expect(seed.events.find(e => e['kind'] === 'seed-done')).toMatchObject({ written: true })
    expect(vmDone((await cli(['run', 'seeded'], t1)).events)).toMatchObject({ status: 'success', mode: 'delta' })

    const failover = await cli(['failover', 'nightly'], new Date(t1.getTime() + 60_000))
    const done = failover.events.find(e => e['kind'] === 'failover-done') as {
      results: { status: string; started: boolean; failoverVm?: { uuid: string } }[]
    }
    expect(done.results.map(r => [r.status, r.started])).toEqual([['success', true]])
    const started = await f.target.getByUuid('VM', done.results[0]!.failoverVm!.uuid)
    expect((await f.target.getRecord('VM', started)).power_state).toBe('Running')
  })
})
