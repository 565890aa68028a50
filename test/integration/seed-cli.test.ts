/**
 * `xen-cr seed` through the real CLI against the lab: the manual procedure with VHD files
 * (snapshot, export each disk through GET /export_raw_vdi, import on the target SR through
 * PUT /import_raw_vdi), the seed, and a `run` that must send only the blocks changed since the
 * snapshot. Every refusal must exit 5 and leave both pools' records exactly as they were.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import { JobStore } from '../../src/jobs/job-store.js'
import type { Job } from '../../src/jobs/types.js'
import { runPass } from '../../src/replication/pass.js'
import { seed, type SeedEvent } from '../../src/replication/seed/seed.js'
import { KEYS, REPLICA_TAG, START_BLOCKED_MESSAGE } from '../../src/replication/metadata.js'
import { setVdiOtherConfig } from '../../src/xapi/vdi.js'
import { hardShutdownVm, setVmOtherConfig, snapshotVm, startVm } from '../../src/xapi/vm.js'
import type { Ref } from '../../src/xapi/types.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { makeTempDir } from '../helpers/tmp.js'
import {
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
import { handMadeCopy, manualSnapshot, recordsSnapshot } from './seed-fixture.js'

interface CliResult {
  readonly code: number
  readonly events: Record<string, unknown>[]
  readonly stderr: string
}

async function cli(f: Fixture, jobsFile: string, args: readonly string[]): Promise<CliResult> {
  const stdout = new CaptureStream()
  const stderr = new CaptureStream()
  const code = await run(['--config', f.lab.configPath, '--jobs-file', jobsFile, '--json', ...args], {
    stdout,
    stderr,
    env: {},
    cwd: f.lab.dir,
  })
  // --json puts the error event on stderr, everything else on stdout
  const events = [...stdout.lines, ...stderr.lines].map(l => JSON.parse(l) as Record<string, unknown>)
  return { code, events, stderr: stderr.text }
}

const oc = async (
  f: Fixture,
  side: 'source' | 'target',
  cls: 'VM' | 'VDI',
  ref: string,
): Promise<Readonly<Record<string, string>>> => (await f[side].getRecord(cls, ref as Ref<never>)).other_config

describe('xen-cr seed on a hand-made copy', () => {
  let f: Fixture
  let tmp: { path: string; remove: () => Promise<void> }
  let job: Job
  let jobsFile: string

  beforeAll(async () => {
    f = await startFixture()
    tmp = await makeTempDir('xen-cr-seed-')
    job = makeJob(f)
    jobsFile = join(tmp.path, 'jobs.json')
    await new JobStore(jobsFile).add(job)
  })
  afterAll(async () => {
    await f.close()
    await tmp.remove()
  })

  it('writes every key a completed era-B pass writes, is idempotent, and the next run is an exact delta equal to the source', async () => {
    const snap = await manualSnapshot(f)
    const copy = await handMadeCopy(f, snap.ref, f.srs['Replica A']!, tmp.path)

    const dry = await cli(f, jobsFile, [
      'seed',
      '--job',
      'nightly',
      '--snapshot',
      snap.uuid,
      '--target-vm',
      copy.uuid,
      '--dry-run',
    ])
    expect(dry.code).toBe(0)
    expect(dry.events.find(e => e['kind'] === 'seed-plan')).toMatchObject({ dryRun: true })
    expect((await oc(f, 'target', 'VM', copy.ref))[KEYS.job]).toBeUndefined()

    // a sample of 2 blocks per disk stops reading each export after its last sampled block
    const sampled = await cli(f, jobsFile, [
      'seed',
      '--job',
      'nightly',
      '--snapshot',
      snap.uuid,
      '--target-vm',
      copy.uuid,
      '--dry-run',
      '--verify=sample',
      '--sample-blocks',
      '2',
    ])
    expect(sampled.code).toBe(0)
    const disks = (
      sampled.events.find(e => e['kind'] === 'seed-verified') as { disks: { equal: boolean; blocks: number[] }[] }
    ).disks
    expect(disks.map(d => [d.equal, d.blocks.length])).toEqual([
      [true, 2],
      [true, 2],
    ])

    const done = await cli(f, jobsFile, [
      'seed',
      '--job',
      'nightly',
      '--snapshot',
      snap.uuid,
      '--target-vm',
      copy.uuid,
      '--verify',
    ])
    expect(done.stderr).toBe('')
    expect(done.code).toBe(0)
    expect(done.events.find(e => e['kind'] === 'seed-verified')).toMatchObject({
      disks: [{ equal: true }, { equal: true }],
    })
    expect(done.events.find(e => e['kind'] === 'seed-done')).toMatchObject({ written: true })

    // --- the keys, exactly
    const snapRec = await f.source.getRecord('VM', snap.ref)
    const dt = snapRec.other_config[KEYS.datetime]!
    expect(dt).toMatch(/^\d{8}T\d{2}:\d{2}:\d{2}Z$/)
    const id = { [KEYS.job]: job.id, [KEYS.schedule]: job.schedules[0]!.id, [KEYS.vm]: f.vmUuid }
    expect(snapRec.other_config).toMatchObject({
      ...id,
      [KEYS.datetime]: dt,
      [KEYS.exported]: 'true',
      [KEYS.deltaChainLength]: '0',
    })
    expect(snapRec.name_label).toBe('[XO Backup nightly] web')
    expect(snapRec.is_a_template).toBe(false)
    const snapDisks = await disksOf(f.source, snap.ref)
    const snapVdis = await Promise.all(snapDisks.map(d => f.source.getRecord('VDI', d)))
    for (const vdi of snapVdis) {
      expect(vdi.other_config).toMatchObject({
        ...id,
        [KEYS.datetime]: dt,
        [KEYS.exported]: 'true',
        [KEYS.deltaChainLength]: '0',
        [KEYS.contentKey]: vdi.uuid,
      })
    }
    const rep = await f.target.getRecord('VM', copy.ref)
    const sr = f.srs['Replica A']!
    expect(rep.other_config).toMatchObject({
      ...id,
      [KEYS.copyOf]: snap.uuid,
      [KEYS.sr]: sr,
      [KEYS.datetime]: dt,
      [KEYS.deltaChainLength]: '0',
    })
    expect(rep.name_label).toMatch(/^web - nightly - \(\d{8}T\d{6}Z\)$/)
    expect(rep.blocked_operations).toEqual({ start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE })
    expect(rep.tags).toContain(REPLICA_TAG)
    expect(rep.ha_restart_priority).toBe('')
    const repDisks = await disksOf(f.target, copy.ref)
    for (const [i, d] of repDisks.entries()) {
      expect(await oc(f, 'target', 'VDI', d)).toMatchObject({
        ...id,
        [KEYS.copyOf]: snapVdis[i]!.uuid,
        [KEYS.contentKey]: snapVdis[i]!.uuid,
        [KEYS.sr]: sr,
        [KEYS.datetime]: dt,
      })
    }
    const seeded = {
      snapshot: Object.keys(snapRec.other_config).sort(),
      snapshotDisk: Object.keys(snapVdis[0]!.other_config).sort(),
      replica: Object.keys(rep.other_config)
        .filter(k => k.startsWith('xo:'))
        .sort(),
      replicaDisk: Object.keys(await oc(f, 'target', 'VDI', repDisks[0]!))
        .filter(k => k.startsWith('xo:'))
        .sort(),
    }

    // --- idempotent: nothing changes the second time
    const before = [await recordsSnapshot(f.source), await recordsSnapshot(f.target)]
    const again = await cli(f, jobsFile, ['seed', '--job', job.id, '--snapshot', snap.uuid, '--target-vm', copy.uuid])
    expect(again.code).toBe(0)
    expect(again.events.find(e => e['kind'] === 'seed-plan')).toMatchObject({ plan: { changes: [] } })
    expect(again.events.find(e => e['kind'] === 'seed-done')).toMatchObject({ written: false })
    expect([await recordsSnapshot(f.source), await recordsSnapshot(f.target)]).toEqual(before)

    // --- the next run: only the two blocks written since the snapshot, and equal content
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [1, 5], seed: 7 })
    const pass = await runPass({ job, source: f.source, target: f.target })
    expect(pass.results).toMatchObject([{ status: 'success', mode: 'delta' }])
    expect(pass.results[0]?.status === 'success' && pass.results[0].bytes).toBe(
      vhdLength(16 * MiB, 2) + vhdLength(8 * MiB, 0),
    )
    const [newSnap] = (await jobSnapshots(f.source, job.id, f.vmRef)).map(([ref]) => ref)
    const reps = await replicas(f.target, job.id, f.vmUuid)
    const newest = reps[reps.length - 1]![0]
    expect(newest).not.toBe(copy.ref)
    const h = await expectReplicaMatches(f, newest, newSnap!)
    expect(h.replica).toEqual(h.snapshot)

    // --- the seed carried exactly the keys the completed pass wrote
    const passSnap = await f.source.getRecord('VM', newSnap!)
    const passRep = await f.target.getRecord('VM', newest)
    expect(seeded.snapshot).toEqual(Object.keys(passSnap.other_config).sort())
    expect(seeded.snapshotDisk).toEqual(
      Object.keys(await oc(f, 'source', 'VDI', (await disksOf(f.source, newSnap!))[0]!)).sort(),
    )
    expect(seeded.replica).toEqual(
      Object.keys(passRep.other_config)
        .filter(k => k.startsWith('xo:'))
        .sort(),
    )
    expect(seeded.replicaDisk).toEqual(
      Object.keys(await oc(f, 'target', 'VDI', (await disksOf(f.target, newest))[0]!))
        .filter(k => k.startsWith('xo:'))
        .sort(),
    )
  })
})

describe('xen-cr seed refusals: exit 5, nothing written', () => {
  let f: Fixture
  let tmp: { path: string; remove: () => Promise<void> }
  let jobsFile: string
  let snap: { ref: Ref<'VM'>; uuid: string }
  let copy: { ref: Ref<'VM'>; uuid: string }

  beforeAll(async () => {
    f = await startFixture()
    tmp = await makeTempDir('xen-cr-seed-refuse-')
    jobsFile = join(tmp.path, 'jobs.json')
    const store = new JobStore(jobsFile)
    await store.add(makeJob(f))
    await store.add(
      makeJob(f, {
        id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0101',
        name: 'other',
        vms: { uuids: ['0b7e2f7a-1c55-4f0e-9a57-3c1d9e0fdead'], tags: [], all: false },
        schedules: [
          {
            id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0102',
            timing: { kind: 'interval', interval: '1h', intervalMs: 3_600_000 },
            retention: 1,
          },
        ],
      }),
    )
    snap = await manualSnapshot(f)
    copy = await handMadeCopy(f, snap.ref, f.srs['Replica A']!, tmp.path)
  })
  afterAll(async () => {
    await f.close()
    await tmp.remove()
  })

  async function refused(args: readonly string[], code: string): Promise<void> {
    const before = [await recordsSnapshot(f.source), await recordsSnapshot(f.target)]
    const result = await cli(f, jobsFile, ['seed', ...args])
    expect(result.events.find(e => e['kind'] === 'error')).toMatchObject({ code, exitCode: 5 })
    expect(result.code).toBe(5)
    expect([await recordsSnapshot(f.source), await recordsSnapshot(f.target)]).toEqual(before)
  }
  const base = (over: { snapshot?: string; target?: string; job?: string } = {}): string[] => [
    '--job',
    over.job ?? 'nightly',
    '--snapshot',
    over.snapshot ?? snap.uuid,
    '--target-vm',
    over.target ?? copy.uuid,
  ]

  it('refuses malformed ids, unknown or wrong objects, and a VM the job does not replicate', async () => {
    await refused(base({ snapshot: 'not-a-uuid' }), 'SEED_ID_INVALID')
    await refused(base({ snapshot: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0fbeef' }), 'SEED_SNAPSHOT_NOT_FOUND')
    await refused(base({ snapshot: f.vmUuid }), 'SEED_NOT_A_SNAPSHOT')
    await refused(base({ target: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0fbeef' }), 'SEED_TARGET_NOT_FOUND')
    await refused(base({ job: 'other' }), 'SEED_VM_NOT_IN_JOB')
    const targetSnap = await snapshotVm(f.target, copy.ref, 'a snapshot of the copy')
    await refused(base({ target: (await f.target.getRecord('VM', targetSnap)).uuid }), 'SEED_TARGET_NOT_A_VM')
  })

  it('refuses a target that runs, disks that differ, and an SR outside the job', async () => {
    // a guest without tools: no guest metrics appear on their own timer (500 ms by default) to
    // race the shutdown below and change what the following tests start from
    f.lab.control.setGuest('tgt', copy.uuid, { tools: 'never' })
    await startVm(f.target, copy.ref)
    await refused(base(), 'SEED_TARGET_NOT_HALTED')
    await hardShutdownVm(f.target, copy.ref)

    const bigger = await handMadeCopy(f, snap.ref, f.srs['Replica A']!, tmp.path, { sizeDelta: 2 * MiB })
    await refused(base({ target: bigger.uuid }), 'SEED_DISKS_MISMATCH')
    const onB = await handMadeCopy(f, snap.ref, f.srs['Replica B']!, tmp.path)
    await refused(base({ target: onB.uuid }), 'SEED_SR_NOT_IN_JOB')
  })

  it('refuses content that differs (--verify and --verify=sample)', async () => {
    const altered = await handMadeCopy(f, snap.ref, f.srs['Replica A']!, tmp.path)
    const [disk0] = await disksOf(f.target, altered.ref)
    await f.lab.control.writeGuestData('tgt', (await f.target.getRecord('VDI', disk0!)).uuid, { blocks: [6], seed: 5 })
    await refused([...base({ target: altered.uuid }), '--verify'], 'SEED_CONTENT_MISMATCH')
    // 8 blocks is the whole 16 MiB disk: the sample cannot miss block 6
    await refused(
      [...base({ target: altered.uuid }), '--verify=sample', '--sample-blocks', '8'],
      'SEED_CONTENT_MISMATCH',
    )
  })

  it('refuses objects another job or copy already claims, and a snapshot already replicated there', async () => {
    const claimed = await handMadeCopy(f, snap.ref, f.srs['Replica A']!, tmp.path)
    await setVmOtherConfig(f.target, claimed.ref, { [KEYS.copyOf]: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0bad' })
    await refused(base({ target: claimed.uuid }), 'SEED_TARGET_CLAIMED')
    await setVmOtherConfig(f.target, claimed.ref, { [KEYS.copyOf]: null })
    const [claimedDisk] = await disksOf(f.target, claimed.ref)
    await setVdiOtherConfig(f.target, claimedDisk!, { [KEYS.job]: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0101' })
    await refused(base({ target: claimed.uuid }), 'SEED_TARGET_CLAIMED')

    const other = await snapshotVm(f.source, f.vmRef, "someone else's snapshot")
    await setVmOtherConfig(f.source, other, { [KEYS.job]: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0101' })
    await refused(base({ snapshot: (await f.source.getRecord('VM', other)).uuid }), 'SEED_SNAPSHOT_CLAIMED')

    const ok = await cli(f, jobsFile, ['seed', ...base()])
    expect(ok.code).toBe(0)
    const twin = await handMadeCopy(f, snap.ref, f.srs['Replica A']!, tmp.path)
    await refused(base({ target: twin.uuid }), 'SEED_ALREADY_REPLICATED')
  })

  it('a sampled verification stops reading each export after its last sampled block', async () => {
    const picks = [0.0, 0.2]
    const events: SeedEvent[] = []
    const job = makeJob(f)
    const result = await seed({
      request: {
        job: { id: job.id, name: job.name, srs: job.srs, vms: job.vms },
        scheduleId: job.schedules[0]!.id,
        snapshotUuid: snap.uuid,
        targetVmUuid: copy.uuid,
      },
      source: f.source,
      target: f.target,
      dryRun: true,
      verify: 'sample',
      sampleBlocks: 2,
      random: () => picks.shift() ?? 0.5,
      onEvent: e => events.push(e),
    })
    // blocks 0 and 1 of the 16 MiB root disk: reading ends at 4 MiB on both sides
    expect(result.verification?.[0]).toMatchObject({ equal: true, blocks: [0, 1] })
    const read = (side: 'source' | 'target'): number =>
      Math.max(
        ...events
          .filter(
            (e): e is Extract<SeedEvent, { kind: 'seed-verify-progress' }> =>
              e.kind === 'seed-verify-progress' && e.userdevice === '0' && e.side === side,
          )
          .map(e => e.read),
      )
    for (const side of ['source', 'target'] as const) {
      expect(read(side)).toBeGreaterThanOrEqual(4 * MiB)
      expect(read(side)).toBeLessThan(16 * MiB)
    }
    // progress counts what is compared (the two sampled blocks), not the reading up to the last one
    const progress = events.filter(e => e.kind === 'seed-verify-progress' && e.userdevice === '0')
    expect(progress.at(-1)).toMatchObject({ bytes: 4 * MiB, total: 4 * MiB })
    expect(progress.every(e => e.kind === 'seed-verify-progress' && e.total === 4 * MiB)).toBe(true)
  })
})
