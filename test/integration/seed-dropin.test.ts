/**
 * Compatibility with Xen Orchestra's xo-cr-seed 1.0.2: a seed in its metadata layout (VM-level
 * keys only) is accepted by `run` as a base (delta), and the `xen-cr-seed` drop-in takes its six
 * positionals (credentials percent-encoded in the URL) and the seed document's four-uuid form,
 * with real exit codes and the password never in any output.
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { connect as netConnect, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { pipeline } from 'node:stream'
import { createServer as createTlsServer } from 'node:tls'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runSeedDropIn } from '../../src/cli/xen-cr-seed.js'
import { JobStore } from '../../src/jobs/job-store.js'
import type { Job } from '../../src/jobs/types.js'
import type { LabSpec } from '../../src/lab/spec.js'
import { runPass } from '../../src/replication/pass.js'
import { KEYS, START_BLOCKED_MESSAGE } from '../../src/replication/metadata.js'
import type { Ref } from '../../src/xapi/types.js'
import { setVdiOtherConfig } from '../../src/xapi/vdi.js'
import { blockOperation, setVmNameLabel, setVmOtherConfig } from '../../src/xapi/vm.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { makeTempDir } from '../helpers/tmp.js'
import {
  SPEC,
  disksOf,
  expectReplicaMatches,
  jobSnapshots,
  makeJob,
  MiB,
  replicas,
  startFixture,
  vhdLength,
  type Fixture,
} from './replication-fixture.js'
import { handMadeCopy, manualSnapshot, recordsSnapshot, xvaCopy } from './seed-fixture.js'

// A password that must be percent-encoded in a URL, as xo-cr-seed users had to (XO #5947).
const PASSWORD = 'p@ss:w/rd%#1'
const SEED_SPEC: LabSpec = {
  pools: SPEC.pools.map(p => (p.name === 'src' ? { ...p, users: [{ user: 'root', password: PASSWORD }] } : p)),
}

/** What xo-cr-seed 1.0.2 writes (reference xo-replication-behaviour.md §2.4), call for call. */
async function xoCrSeed(
  f: Fixture,
  snapshot: Ref<'VM'>,
  targetVm: Ref<'VM'>,
  jobId: string,
  scheduleId: string,
): Promise<void> {
  const snap = await f.source.getRecord('VM', snapshot)
  const vm = await f.source.getRecord('VM', snap.snapshot_of)
  const keys = {
    [KEYS.datetime]: snap.snapshot_time,
    [KEYS.job]: jobId,
    [KEYS.schedule]: scheduleId,
    [KEYS.vm]: vm.uuid,
  }
  await setVmOtherConfig(f.source, snapshot, { ...keys, [KEYS.exported]: 'true' })
  const targetDisks = await disksOf(f.target, targetVm)
  const sr = (await f.target.getRecord('SR', (await f.target.getRecord('VDI', targetDisks[0]!)).SR)).uuid
  await setVmNameLabel(f.target, targetVm, `${vm.name_label} (${snap.snapshot_time})`)
  await setVmOtherConfig(f.target, targetVm, { ...keys, [KEYS.sr]: sr, [KEYS.copyOf]: snap.uuid })
  for (const op of ['start', 'start_on']) await blockOperation(f.target, targetVm, op, START_BLOCKED_MESSAGE)
  const sourceDisks = await disksOf(f.source, snapshot)
  for (const [i, d] of targetDisks.entries()) {
    await setVdiOtherConfig(f.target, d, { [KEYS.copyOf]: (await f.source.getRecord('VDI', sourceDisks[i]!)).uuid })
  }
}

async function expectExactDelta(f: Fixture, job: Job, blocks: number[]): Promise<void> {
  await f.lab.control.writeGuestData('src', f.vmUuid, { blocks, seed: blocks.length + 11 })
  const pass = await runPass({ job, source: f.source, target: f.target })
  expect(pass.results).toMatchObject([{ status: 'success', mode: 'delta' }])
  expect(pass.results[0]?.status === 'success' && pass.results[0].bytes).toBe(
    vhdLength(16 * MiB, blocks.length) + vhdLength(8 * MiB, 0),
  )
  const [snap] = (await jobSnapshots(f.source, job.id, f.vmRef)).map(([ref]) => ref)
  const reps = await replicas(f.target, job.id, f.vmUuid)
  const h = await expectReplicaMatches(f, reps[reps.length - 1]![0], snap!)
  expect(h.replica).toEqual(h.snapshot)
}

/**
 * A TLS front for a lab host, with a fresh self-signed certificate: a pool reached over https
 * whose certificate nobody trusts, as XAPI hosts ship.
 */
async function tlsFront(dir: string, target: URL): Promise<{ port: number; close(): Promise<void> }> {
  const key = join(dir, 'front.key')
  const cert = join(dir, 'front.crt')
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-days',
    '1',
    '-keyout',
    key,
    '-out',
    cert,
  ])
  const server = createTlsServer({ key: await readFile(key), cert: await readFile(cert) }, socket => {
    const upstream = netConnect(Number(target.port), target.hostname)
    pipeline(socket, upstream, socket, () => undefined)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise(resolve => server.close(() => resolve())),
  }
}

describe('xo-cr-seed compatibility', () => {
  let f: Fixture
  let tmp: { path: string; remove: () => Promise<void> }
  let jobsFile: string
  let job: Job

  beforeAll(async () => {
    f = await startFixture(SEED_SPEC)
    tmp = await makeTempDir('xen-cr-seed-dropin-')
    jobsFile = join(tmp.path, 'jobs.json')
    job = makeJob(f)
  })
  afterAll(async () => {
    await f.close()
    await tmp.remove()
  })

  async function dropIn(args: readonly string[]): Promise<{ code: number; out: string; err: string }> {
    const stdout = new CaptureStream()
    const stderr = new CaptureStream()
    const code = await runSeedDropIn(['--config', f.lab.configPath, '--jobs-file', jobsFile, ...args], {
      stdout,
      stderr,
      env: {},
      cwd: tmp.path,
    })
    return { code, out: stdout.text, err: stderr.text }
  }

  it('a seed in the original xo-cr-seed layout (VM-level keys only) is a base for run: the next pass is a delta', async () => {
    const snap = await manualSnapshot(f, 'xo-cr-seed snapshot')
    const copy = await handMadeCopy(f, snap.ref, f.srs['Replica A']!, tmp.path)
    await xoCrSeed(f, snap.ref, copy.ref, job.id, job.schedules[0]!.id)
    await expectExactDelta(f, job, [2])
  })

  it('xen-cr-seed takes the six positionals with percent-encoded credentials; refuses with exit 5; never shows the password', async () => {
    // The job is not in the store (as for an XO job): ids from argv, pools from the URLs.
    const snap = await manualSnapshot(f, 'drop-in snapshot')
    const copy = await handMadeCopy(f, snap.ref, f.srs['Replica B']!, tmp.path)
    const src = f.lab.pools.find(p => p.name === 'src')!
    const tgt = f.lab.pools.find(p => p.name === 'tgt')!
    const srcUrl = `http://root:${encodeURIComponent(PASSWORD)}@${new URL(src.url).host}`
    const tgtUrl = `http://${tgt.user}:${encodeURIComponent(tgt.password)}@${new URL(tgt.url).host}`
    const otherJob = { id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0201', schedule: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0202' }

    const usage = await dropIn([snap.uuid, copy.uuid, otherJob.id])
    expect(usage.code).toBe(2)

    const before = [await recordsSnapshot(f.source), await recordsSnapshot(f.target)]
    const refused = await dropIn([srcUrl, f.vmUuid, tgtUrl, copy.uuid, otherJob.id, otherJob.schedule])
    expect(refused.code).toBe(5)
    expect(refused.err).toContain('SEED_NOT_A_SNAPSHOT')
    expect([await recordsSnapshot(f.source), await recordsSnapshot(f.target)]).toEqual(before)

    const ok = await dropIn([srcUrl, snap.uuid, tgtUrl, copy.uuid, otherJob.id, otherJob.schedule])
    expect(ok.err).toContain('CREDENTIALS_IN_ARGV')
    expect(ok.err).toContain('SEED_JOB_NOT_IN_STORE')
    expect(ok.code).toBe(0)
    for (const text of [usage.out, usage.err, refused.out, refused.err, ok.out, ok.err]) {
      expect(text).not.toContain(PASSWORD)
      expect(text).not.toContain(encodeURIComponent(PASSWORD))
      expect(text).not.toContain(tgt.password)
    }
    const rep = await f.target.getRecord('VM', copy.ref)
    expect(rep.other_config).toMatchObject({
      [KEYS.job]: otherJob.id,
      [KEYS.schedule]: otherJob.schedule,
      [KEYS.copyOf]: snap.uuid,
      [KEYS.sr]: f.srs['Replica B'],
    })

    // The same ids as a xen-cr job, its SR added: the next run continues the seed with a delta.
    const adopted = makeJob(f, {
      id: otherJob.id,
      name: 'adopted',
      srs: [f.srs['Replica B']!],
      schedules: [{ ...job.schedules[0]!, id: otherJob.schedule }],
    })
    await expectExactDelta(f, adopted, [0, 7])
  })

  it('the classic procedure: snapshot, XVA export (GET /export), import on the target SR (PUT /import), xen-cr-seed on the template it gives; the next run is an exact delta', async () => {
    const snap = await manualSnapshot(f, 'xva snapshot')
    // left a template, as the import gives it: xen-cr-seed makes it a VM (it used to refuse it)
    const copy = await xvaCopy(f, snap.uuid, f.srs['Replica A']!, join(tmp.path, 'seed.xva'), { asTemplate: true })
    expect((await f.target.getRecord('VM', copy.ref)).is_a_template).toBe(true)
    const src = f.lab.pools.find(p => p.name === 'src')!
    const tgt = f.lab.pools.find(p => p.name === 'tgt')!
    const ids = { id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0601', schedule: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0602' }
    const seeded = await dropIn([
      '--verify',
      `http://root:${encodeURIComponent(PASSWORD)}@${new URL(src.url).host}`,
      snap.uuid,
      `http://${tgt.user}:${encodeURIComponent(tgt.password)}@${new URL(tgt.url).host}`,
      copy.uuid,
      ids.id,
      ids.schedule,
    ])
    expect(seeded.code).toBe(0)
    expect(await f.target.getRecord('VM', copy.ref)).toMatchObject({
      is_a_template: false,
      blocked_operations: { start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE },
    })
    const xvaJob = makeJob(f, { id: ids.id, name: 'xva', schedules: [{ ...job.schedules[0]!, id: ids.schedule }] })
    await expectExactDelta(f, xvaJob, [4, 6])
  })

  it('xen-cr-seed takes the four-uuid form, with pools from the job store or found among the configured pools', async () => {
    const stored = makeJob(f, {
      id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0301',
      name: 'stored',
      schedules: [{ ...job.schedules[0]!, id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0302' }],
    })
    await new JobStore(jobsFile).add(stored)
    const snap = await manualSnapshot(f, 'four-uuid snapshot')
    const copy = await handMadeCopy(f, snap.ref, f.srs['Replica A']!, tmp.path)
    const fromStore = await dropIn(['--verify', snap.uuid, copy.uuid, stored.id, stored.schedules[0]!.id])
    expect(fromStore.err).toBe('')
    expect(fromStore.code).toBe(0)
    expect((await f.target.getRecord('VM', copy.ref)).other_config[KEYS.job]).toBe(stored.id)

    const snap2 = await manualSnapshot(f, 'four-uuid snapshot, outside job')
    const copy2 = await handMadeCopy(f, snap2.ref, f.srs['Replica A']!, tmp.path)
    const outside = { id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0401', schedule: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0402' }
    const nowhere = await dropIn(['0b7e2f7a-1c55-4f0e-9a57-3c1d9e0fbeef', copy2.uuid, outside.id, outside.schedule])
    expect(nowhere.err).toContain('SEED_SNAPSHOT_NOT_FOUND')
    expect(nowhere.code).toBe(5)
    const found = await dropIn(['--json', snap2.uuid, copy2.uuid, outside.id, outside.schedule])
    expect(found.code).toBe(0)
    expect((await f.target.getRecord('VM', copy2.ref)).other_config).toMatchObject({
      [KEYS.job]: outside.id,
      [KEYS.copyOf]: snap2.uuid,
    })
  })

  it('xen-cr-seed verifies TLS certificates (xo-cr-seed never did) unless --allow-unauthorized', async () => {
    const src = f.lab.pools.find(p => p.name === 'src')!
    const tgt = f.lab.pools.find(p => p.name === 'tgt')!
    const front = await tlsFront(tmp.path, new URL(src.url))
    try {
      const snap = await manualSnapshot(f, 'tls snapshot')
      const copy = await handMadeCopy(f, snap.ref, f.srs['Replica A']!, tmp.path)
      const srcUrl = `root:${encodeURIComponent(PASSWORD)}@127.0.0.1:${front.port}` // no scheme: https, as xo-cr-seed assumed
      const tgtUrl = `http://${tgt.user}:${encodeURIComponent(tgt.password)}@${new URL(tgt.url).host}`
      const ids = ['0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0501', '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0502']

      const refused = await dropIn([srcUrl, snap.uuid, tgtUrl, copy.uuid, ...ids])
      expect(refused.err).toContain('POOL_TLS')
      expect(refused.err).toContain('xo-cr-seed never verified certificates')
      expect(refused.code).toBe(4)
      expect((await f.target.getRecord('VM', copy.ref)).other_config[KEYS.job]).toBeUndefined()

      const accepted = await dropIn([
        '--allow-unauthorized',
        '--verify=sample',
        srcUrl,
        snap.uuid,
        tgtUrl,
        copy.uuid,
        ...ids,
      ])
      expect(accepted.err).toContain('TLS_NOT_VERIFIED')
      expect(accepted.code).toBe(0)
      expect((await f.target.getRecord('VM', copy.ref)).other_config).toMatchObject({
        [KEYS.job]: ids[0],
        [KEYS.copyOf]: snap.uuid,
      })
      for (const text of [refused.out, refused.err, accepted.out, accepted.err]) expect(text).not.toContain(PASSWORD)
    } finally {
      await front.close()
    }
  })
})
