/**
 * The guided offline seed through the real CLI: `seed export` (snapshot with the job's keys,
 * VHD files hashed on the fly, manifest) then `seed import` (hashes checked, replica built on
 * the target SR, files imported, metadata attached), and a `run` that is an exact delta. A
 * corrupted file or an SR outside the job is refused with exit 5 before anything is written.
 */
import { createHash } from 'node:crypto'
import { open, readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import { JobStore } from '../../src/jobs/job-store.js'
import type { Job } from '../../src/jobs/types.js'
import { runPass } from '../../src/replication/pass.js'
import { KEYS, REPLICA_TAG, START_BLOCKED_MESSAGE } from '../../src/replication/metadata.js'
import type { SeedManifest } from '../../src/replication/seed/manifest.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { makeTempDir } from '../helpers/tmp.js'
import {
  disksOf,
  expectReplicaMatches,
  jobSnapshots,
  makeJob,
  MiB,
  rawSha256,
  replicas,
  startFixture,
  vhdLength,
  type Fixture,
} from './replication-fixture.js'
import { recordsSnapshot } from './seed-fixture.js'

describe('guided seed: seed export, seed import, then run', () => {
  let f: Fixture
  let tmp: { path: string; remove: () => Promise<void> }
  let jobsFile: string
  let job: Job

  beforeAll(async () => {
    f = await startFixture()
    tmp = await makeTempDir('xen-cr-seed-guided-')
    jobsFile = join(tmp.path, 'jobs.json')
    job = makeJob(f)
    await new JobStore(jobsFile).add(job)
  })
  afterAll(async () => {
    await f.close()
    await tmp.remove()
  })

  async function cli(args: readonly string[]): Promise<{ code: number; events: Record<string, unknown>[] }> {
    const stdout = new CaptureStream()
    const stderr = new CaptureStream()
    const code = await run(['--config', f.lab.configPath, '--jobs-file', jobsFile, '--json', ...args], {
      stdout,
      stderr,
      env: {},
      cwd: tmp.path,
    })
    // --json puts the error event on stderr, everything else on stdout
    return { code, events: [...stdout.lines, ...stderr.lines].map(l => JSON.parse(l) as Record<string, unknown>) }
  }

  it('exports VHD files with a manifest, imports them as a complete replica, and the next run sends only the changed blocks', async () => {
    const out = join(tmp.path, 'seed')
    const bogus = await cli([
      'seed',
      'export',
      '--job',
      'nightly',
      '--vm',
      f.vmUuid,
      '--out',
      join(tmp.path, 'bogus'),
      '--format',
      'qcow2',
    ])
    expect(bogus.code).toBe(2)
    expect(bogus.events.find(e => e['kind'] === 'error')).toMatchObject({ code: 'INVALID_OPTION' })

    const exported = await cli(['seed', 'export', '--job', 'nightly', '--vm', f.vmUuid, '--out', out])
    expect(exported.code).toBe(0)
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as SeedManifest
    expect(manifest.disks.map(d => d.userdevice)).toEqual(['0', '1'])
    expect((await readdir(out)).sort()).toEqual(['manifest.json', ...manifest.disks.map(d => d.file)].sort())
    for (const d of manifest.disks) {
      const bytes = await readFile(join(out, d.file))
      expect(bytes.length).toBe(d.bytes)
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(d.sha256)
    }
    // the snapshot is the job's, not yet exported: a run now would not take it for a base
    const snaps = await jobSnapshots(f.source, job.id, f.vmRef)
    expect(snaps.map(([, s]) => s.uuid)).toEqual([manifest.snapshot.uuid])
    expect(snaps[0]![1].other_config[KEYS.exported]).toBeUndefined()
    expect(snaps[0]![1].name_label).toBe('[XO Backup nightly] web')

    // --- refusals before anything is written: an SR outside the job, a corrupted file
    const before = [await recordsSnapshot(f.source), await recordsSnapshot(f.target)]
    const wrongSr = await cli(['seed', 'import', '--job', 'nightly', '--from', out, '--sr', f.srs['Replica B']!])
    expect(wrongSr.events.find(e => e['kind'] === 'error')).toMatchObject({ code: 'SEED_SR_NOT_IN_JOB' })
    expect(wrongSr.code).toBe(5)
    const file = join(out, manifest.disks[0]!.file)
    const handle = await open(file, 'r+')
    const original = Buffer.alloc(1)
    const at = 4096 + 512 + 100
    await handle.read(original, 0, 1, at)
    await handle.write(Buffer.from([original[0]! ^ 0xff]), 0, 1, at)
    const corrupt = await cli(['seed', 'import', '--job', 'nightly', '--from', out, '--sr', f.srs['Replica A']!])
    expect(corrupt.events.find(e => e['kind'] === 'error')).toMatchObject({ code: 'SEED_FILE_MISMATCH' })
    expect(corrupt.code).toBe(5)
    await handle.write(original, 0, 1, at)
    await handle.close()
    expect([await recordsSnapshot(f.source), await recordsSnapshot(f.target)]).toEqual(before)

    // --- the import
    const imported = await cli(['seed', 'import', '--job', 'nightly', '--from', out, '--sr', f.srs['Replica A']!])
    expect(imported.code).toBe(0)
    const [repRef, rep] = (await replicas(f.target, job.id, f.vmUuid))[0]!
    expect(rep.other_config).toMatchObject({
      [KEYS.copyOf]: manifest.snapshot.uuid,
      [KEYS.datetime]: manifest.snapshot.datetime,
      [KEYS.sr]: f.srs['Replica A'],
    })
    expect(rep.blocked_operations).toEqual({ start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE })
    expect(rep.tags).toContain(REPLICA_TAG)
    const snapAfter = await f.source.getRecord('VM', snaps[0]![0])
    expect(snapAfter.other_config).toMatchObject({ [KEYS.exported]: 'true', [KEYS.deltaChainLength]: '0' })
    const h = await expectReplicaMatches(f, repRef, snaps[0]![0])
    expect(h.replica).toEqual(h.snapshot)

    // a second import of the same folder finds the replica already there
    const twice = await cli(['seed', 'import', '--job', 'nightly', '--from', out, '--sr', f.srs['Replica A']!])
    expect(twice.events.find(e => e['kind'] === 'error')).toMatchObject({ code: 'SEED_ALREADY_REPLICATED' })
    expect(twice.code).toBe(5)

    // --- the next run
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [3], seed: 21 })
    const pass = await runPass({ job, source: f.source, target: f.target })
    expect(pass.results).toMatchObject([{ status: 'success', mode: 'delta' }])
    expect(pass.results[0]?.status === 'success' && pass.results[0].bytes).toBe(
      vhdLength(16 * MiB, 1) + vhdLength(8 * MiB, 0),
    )
    const [newSnap] = (await jobSnapshots(f.source, job.id, f.vmRef)).map(([ref]) => ref)
    const reps = await replicas(f.target, job.id, f.vmUuid)
    const newest = reps[reps.length - 1]![0]
    const live = await Promise.all((await disksOf(f.source, f.vmRef)).map(d => rawSha256(f.source, d)))
    const copied = await Promise.all((await disksOf(f.target, newest)).map(d => rawSha256(f.target, d)))
    expect(copied).toEqual(live)
    expect(newSnap).toBeDefined()
  })

  it('--format xva: one XVA through GET /export, imported through PUT /import as the replica; the next run is an exact delta', async () => {
    const out = join(tmp.path, 'xva')
    const exported = await cli([
      'seed',
      'export',
      '--job',
      'nightly',
      '--vm',
      f.vmUuid,
      '--out',
      out,
      '--format',
      'xva',
    ])
    expect(exported.code).toBe(0)
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as SeedManifest
    expect((await readdir(out)).sort()).toEqual(['manifest.json', 'seed.xva'])
    expect(manifest.disks.map(d => [d.userdevice, d.format, d.file])).toEqual([
      ['0', 'xva', 'seed.xva'],
      ['1', 'xva', 'seed.xva'],
    ])
    const xva = await readFile(join(out, 'seed.xva'))
    expect(xva.length).toBe(manifest.disks[0]!.bytes)
    // one file, named by both disks of the manifest: its size is said once, not once per disk
    expect(exported.events.find(e => e['kind'] === 'seed-exported')).toMatchObject({ bytes: xva.length })
    expect(createHash('sha256').update(xva).digest('hex')).toBe(manifest.disks[0]!.sha256)
    // a tar whose first member is ova.xml (reference §5.5)
    expect(xva.subarray(0, 7).toString()).toBe('ova.xml')

    const imported = await cli(['seed', 'import', '--job', 'nightly', '--from', out, '--sr', f.srs['Replica A']!])
    expect(imported.code).toBe(0)
    const done = imported.events.find(e => e['kind'] === 'seed-done') as { replica: { uuid: string } }
    const repRef = await f.target.getByUuid('VM', done.replica.uuid)
    const rep = await f.target.getRecord('VM', repRef)
    expect(rep.is_a_template).toBe(false)
    expect(rep.other_config).toMatchObject({
      [KEYS.copyOf]: manifest.snapshot.uuid,
      [KEYS.job]: job.id,
      [KEYS.datetime]: manifest.snapshot.datetime,
      [KEYS.sr]: f.srs['Replica A'],
    })
    expect(rep.blocked_operations).toEqual({ start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE })
    const snapRef = await f.source.getByUuid('VM', manifest.snapshot.uuid)
    const h = await expectReplicaMatches(f, repRef, snapRef)
    expect(h.replica).toEqual(h.snapshot)

    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [0, 2], seed: 31 })
    const pass = await runPass({ job, source: f.source, target: f.target })
    expect(pass.results).toMatchObject([{ status: 'success', mode: 'delta' }])
    expect(pass.results[0]?.status === 'success' && pass.results[0].bytes).toBe(
      vhdLength(16 * MiB, 2) + vhdLength(8 * MiB, 0),
    )
    const reps = await replicas(f.target, job.id, f.vmUuid)
    const newest = reps[reps.length - 1]![0]
    const live = await Promise.all((await disksOf(f.source, f.vmRef)).map(d => rawSha256(f.source, d)))
    expect(await Promise.all((await disksOf(f.target, newest)).map(d => rawSha256(f.target, d)))).toEqual(live)
  })

  it('a failed export or import leaves nothing behind: no snapshot, no files, no replica, no disk', async () => {
    const sourceBefore = await recordsSnapshot(f.source)
    f.lab.control.injectFault('src', {
      kind: 'data-path',
      direction: 'export',
      failTask: ['VDI_IO_ERROR', 'Device I/O errors'],
      nth: 2,
    })
    const failedOut = join(tmp.path, 'failed-export')
    const failedExport = await cli(['seed', 'export', '--job', 'nightly', '--vm', f.vmUuid, '--out', failedOut])
    f.lab.control.clearFaults()
    expect(failedExport.events.find(e => e['kind'] === 'error')).toMatchObject({ code: 'XAPI_VDI_IO_ERROR' })
    expect(failedExport.code).toBe(1)
    expect(await readdir(failedOut)).toEqual([])
    expect(await recordsSnapshot(f.source)).toEqual(sourceBefore)

    const out = join(tmp.path, 'second')
    expect((await cli(['seed', 'export', '--job', 'nightly', '--vm', f.vmUuid, '--out', out])).code).toBe(0)
    const targetBefore = await recordsSnapshot(f.target)
    f.lab.control.injectFault('tgt', {
      kind: 'data-path',
      direction: 'import',
      failTask: ['VDI_IO_ERROR', 'Device I/O errors'],
      nth: 2,
    })
    const failedImport = await cli(['seed', 'import', '--job', 'nightly', '--from', out, '--sr', f.srs['Replica A']!])
    f.lab.control.clearFaults()
    expect(failedImport.events.find(e => e['kind'] === 'error')).toMatchObject({ code: 'XAPI_VDI_IO_ERROR' })
    expect(failedImport.code).toBe(1)
    expect(await recordsSnapshot(f.target)).toEqual(targetBefore)
  })
})
