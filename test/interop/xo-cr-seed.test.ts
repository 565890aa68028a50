/**
 * The seed document's manual procedure with the real `xo-cr-seed` 1.0.2
 * (`@xen-orchestra/cr-seed-cli`, a devDependency), word for word: create the job, snapshot the
 * VM, export the snapshot as an XVA (GET /export), import it on the target SR (PUT /import, which
 * gives a template, as on XAPI), run xo-cr-seed with its six arguments, write guest data, run the
 * job. Without the adoption of a seeded template, that first run was a full with a warning that
 * named no reason (issue 10). The same by hand with our own `xen-cr seed` on the template.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import { KEYS, REPLICA_TAG, START_BLOCKED_MESSAGE } from '../../src/replication/metadata.js'
import { labPool } from '../helpers/lab.js'
import { makeTempDir } from '../helpers/tmp.js'
import {
  MiB,
  expectReplicaMatches,
  jobSnapshots,
  replicas,
  startFixture,
  vhdLength,
  type Fixture,
} from '../integration/replication-fixture.js'
import { manualSnapshot, xvaCopy } from '../integration/seed-fixture.js'

const XO_CR_SEED = join(process.cwd(), 'node_modules', '.bin', 'xo-cr-seed')

let f: Fixture
let tmp: { path: string; remove: () => Promise<void> }
beforeEach(async () => {
  f = await startFixture()
  tmp = await makeTempDir('xen-cr-xo-cr-seed-')
})
afterEach(async () => {
  await f.close()
  await tmp.remove()
})

interface Event {
  readonly kind: string
  readonly code?: string
  readonly message?: string
  readonly result?: { readonly status: string; readonly mode: string; readonly bytes: number }
}

/** The CLI in-process against the lab's config, `--json`: one event per line. */
async function cli(args: string[]): Promise<{ code: number; events: Event[]; err: string }> {
  let out = ''
  let err = ''
  const sink = (append: (s: string) => void): Writable =>
    new Writable({
      write(chunk: Buffer, _e, cb) {
        append(chunk.toString())
        cb()
      },
    })
  const code = await run(['--config', f.lab.configPath, '--json', ...args], {
    stdout: sink(s => (out += s)),
    stderr: sink(s => (err += s)),
    env: { HOME: f.lab.dir, XDG_CONFIG_HOME: f.lab.dir },
    cwd: f.lab.dir,
  })
  const events = [...out.split('\n'), ...err.split('\n')]
    .filter(l => l.startsWith('{'))
    .map(l => JSON.parse(l) as Event)
  return { code, events, err }
}

/** `xen-cr job create … --disabled`, then the job and schedule ids xo-cr-seed takes. */
async function createJob(retention: number): Promise<{ jobId: string; scheduleId: string }> {
  const sr = f.srs['Replica A']!
  const created = await cli([
    'job',
    'create',
    '--name',
    'nightly',
    '--source',
    'src',
    '--target',
    'tgt',
    '--sr',
    sr,
    '--vm',
    f.vmUuid,
    '--interval',
    '1h',
    '--retention',
    String(retention),
    '--disabled',
  ])
  expect(created.err).toBe('')
  expect(created.code).toBe(0)
  const shown = await cli(['job', 'show', 'nightly'])
  expect(shown.code).toBe(0)
  return idsOf(shown.events)
}

function idsOf(events: readonly Event[]): { jobId: string; scheduleId: string } {
  const job = (events as unknown as { job?: { id: string; schedules: { id: string }[] } }[]).find(
    e => e.job !== undefined,
  )?.job
  expect(job).toBeDefined()
  return { jobId: job!.id, scheduleId: job!.schedules[0]!.id }
}

/** A lab pool's URL with its credentials in it, as xo-cr-seed takes it. */
function urlWithCredentials(pool: string): string {
  const info = labPool(f.lab, pool)
  const url = new URL(info.url)
  url.username = encodeURIComponent(info.user)
  url.password = encodeURIComponent(info.password)
  return url.href
}

/** Writes `blocks` on the source VM, runs the job once and checks the delta is exactly those blocks. */
async function expectDeltaOf(blocks: number[], jobId: string): Promise<Event[]> {
  await f.lab.control.writeGuestData('src', f.vmUuid, { blocks, seed: 40 + blocks.length })
  const pass = await cli(['run', 'nightly'])
  expect(pass.code).toBe(0)
  const done = pass.events.filter(e => e.kind === 'vm-done').map(e => e.result)
  expect(done).toMatchObject([{ status: 'success', mode: 'delta' }])
  // the root disk carries the k changed 2 MiB blocks, the data disk none: VHD framing included
  expect(done[0]?.bytes).toBe(vhdLength(16 * MiB, blocks.length) + vhdLength(8 * MiB, 0))
  const [snap] = (await jobSnapshots(f.source, jobId, f.vmRef)).map(([ref]) => ref)
  const reps = await replicas(f.target, jobId, f.vmUuid)
  const h = await expectReplicaMatches(f, reps[reps.length - 1]![0], snap!)
  expect(h.replica).toEqual(h.snapshot)
  return pass.events
}

describe('the seed procedure with the real xo-cr-seed 1.0.2', () => {
  it('ends in a delta of exactly the changed blocks: run adopts the imported template xo-cr-seed keyed', async () => {
    // retention 2: the adopted seed stays beside the new replica, so its state can be read
    const { jobId, scheduleId } = await createJob(2)
    const snapshot = await manualSnapshot(f)
    const copy = await xvaCopy(f, snapshot.uuid, f.srs['Replica A']!, join(tmp.path, 'seed.xva'), {
      asTemplate: true,
    })
    expect((await f.target.getRecord('VM', copy.ref)).is_a_template).toBe(true)

    const seeded = await promisify(execFile)(XO_CR_SEED, [
      urlWithCredentials('src'),
      snapshot.uuid,
      urlWithCredentials('tgt'),
      copy.uuid,
      jobId,
      scheduleId,
    ])
    // xo-cr-seed prints its failures and still exits 0: its silence is the success
    expect(seeded.stderr).toBe('')
    const keyed = await f.target.getRecord('VM', copy.ref)
    expect(keyed).toMatchObject({
      is_a_template: true,
      other_config: { [KEYS.job]: jobId, [KEYS.schedule]: scheduleId, [KEYS.copyOf]: snapshot.uuid },
      blocked_operations: { start: START_BLOCKED_MESSAGE },
    })

    const events = await expectDeltaOf([1, 4, 5], jobId)
    const warnings = events.filter(e => e.kind === 'warning')
    expect(warnings.map(w => w.code)).toEqual(['SEED_TEMPLATE_ADOPTED'])
    expect(warnings[0]?.message).toContain(copy.uuid)
    const adopted = await f.target.getRecord('VM', copy.ref)
    expect(adopted.is_a_template).toBe(false)
    expect(adopted.tags).toContain(REPLICA_TAG)
    expect(adopted.blocked_operations).toMatchObject({ start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE })
    expect((await replicas(f.target, jobId, f.vmUuid)).map(([ref]) => ref)).toContain(copy.ref)
  })

  it('fails loudly when the tool is missing', async () => {
    // the test above must never pass vacuously because the devDependency was not installed
    const help = await promisify(execFile)(XO_CR_SEED, ['--help']).catch((e: unknown) => ({ stderr: String(e) }))
    expect(help.stderr).toMatch(/xo-cr-seed v1\.0\.2/)
  })
})

describe("the README's by-hand procedure with xen-cr seed", () => {
  it('seeds the imported template (made a protected VM) and the next run is a delta of the changed blocks', async () => {
    await createJob(1)
    const snapshot = await manualSnapshot(f)
    const copy = await xvaCopy(f, snapshot.uuid, f.srs['Replica A']!, join(tmp.path, 'seed.xva'), {
      asTemplate: true,
    })
    const seeded = await cli(['seed', '--job', 'nightly', '--snapshot', snapshot.uuid, '--target-vm', copy.uuid])
    expect(seeded.err).not.toMatch(/SEED_/)
    expect(seeded.code).toBe(0)
    const vm = await f.target.getRecord('VM', copy.ref)
    expect(vm.is_a_template).toBe(false)
    expect(vm.blocked_operations).toMatchObject({ start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE })

    const shown = await cli(['job', 'show', 'nightly'])
    const { jobId } = idsOf(shown.events)
    const events = await expectDeltaOf([2, 7], jobId)
    expect(events.filter(e => e.kind === 'warning')).toEqual([])
    // retention 1: the seed is one of the job's replicas, rotated away once the new one is complete
    expect((await replicas(f.target, jobId, f.vmUuid)).map(([ref]) => ref)).not.toContain(copy.ref)
  })
})
