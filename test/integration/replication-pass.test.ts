import { afterEach, describe, expect, it } from 'vitest'
import { runPass } from '../../src/replication/pass.js'
import type { PassEvent } from '../../src/replication/events.js'
import { KEYS, PLACEHOLDER_DATETIME, REPLICA_TAG, START_BLOCKED_MESSAGE } from '../../src/replication/metadata.js'
import {
  BLOCK,
  disksOf,
  rawSha256,
  expectReplicaMatches,
  jobSnapshots,
  makeJob,
  replicas,
  startFixture,
  vhdLength,
  type Fixture,
  MiB,
} from './replication-fixture.js'

let f: Fixture | undefined
afterEach(async () => {
  await f?.close()
  f = undefined
})

describe('replication between two pools', () => {
  it('sends a full copy first, then exactly the changed 2 MiB blocks, and every replica disk matches its snapshot', async () => {
    f = await startFixture()
    const job = makeJob(f)
    const events: PassEvent[] = []

    const first = await runPass({ job, source: f.source, target: f.target, onEvent: e => events.push(e) })
    expect(first.results).toMatchObject([{ status: 'success', mode: 'full' }])
    const [snap1] = (await jobSnapshots(f.source, job.id, f.vmRef)).map(([ref]) => ref)
    const [rep1] = (await replicas(f.target, job.id, f.vmUuid)).map(([ref]) => ref)
    const h1 = await expectReplicaMatches(f, rep1!, snap1!)
    expect(h1.replica).toEqual(h1.snapshot)
    // a full copy of each disk holds every allocated block: 4 of the root disk, 1 of the data disk
    expect(first.results[0]?.status === 'success' && first.results[0].bytes).toBe(
      vhdLength(16 * MiB, 4) + vhdLength(8 * MiB, 1),
    )

    // Three blocks change on the root disk (one of them beyond the filled part), none on the data disk.
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [0, 3, 6], seed: 99 })
    const second = await runPass({ job, source: f.source, target: f.target, onEvent: e => events.push(e) })
    expect(second.results).toMatchObject([{ status: 'success', mode: 'delta' }])
    expect(second.results[0]?.status === 'success' && second.results[0].bytes).toBe(
      vhdLength(16 * MiB, 3) + vhdLength(8 * MiB, 0),
    )

    const snaps = await jobSnapshots(f.source, job.id, f.vmRef)
    const reps = await replicas(f.target, job.id, f.vmUuid)
    expect(reps).toHaveLength(2)
    const h2 = await expectReplicaMatches(f, reps[1]![0], snaps[snaps.length - 1]![0])
    expect(h2.replica).toEqual(h2.snapshot)
    expect(h2.replica[0]).not.toEqual(h1.replica[0])
    // the previous replica still holds the previous content
    const old = await Promise.all((await disksOf(f.target, reps[0]![0])).map(d => rawSha256(f!.target, d)))
    expect(old).toEqual(h1.replica)
    // and the older source snapshot was rotated away: only the new base is left
    expect(snaps).toHaveLength(1)

    const kinds = new Set(events.map(e => e.kind))
    expect([...kinds]).toEqual(
      expect.arrayContaining(['pass-start', 'vm-start', 'disk-progress', 'vm-done', 'pass-done']),
    )
    expect(BLOCK).toBe(2 * MiB)
  })

  it('writes XO-compatible metadata on the snapshot, the replica and their disks', async () => {
    f = await startFixture()
    const job = makeJob(f)
    await runPass({ job, source: f.source, target: f.target })
    const [snapRef, snap] = (await jobSnapshots(f.source, job.id, f.vmRef))[0]!
    const [repRef, rep] = (await replicas(f.target, job.id, f.vmUuid))[0]!

    const dt = snap.other_config[KEYS.datetime]!
    expect(dt).toMatch(/^\d{8}T\d{2}:\d{2}:\d{2}Z$/)
    expect(snap.other_config).toMatchObject({
      [KEYS.job]: job.id,
      [KEYS.schedule]: job.schedules[0]!.id,
      [KEYS.vm]: f.vmUuid,
      [KEYS.exported]: 'true',
      [KEYS.deltaChainLength]: '0',
    })
    expect(snap.name_label).toBe('[XO Backup nightly] web')
    const snapDisks = await disksOf(f.source, snapRef)
    for (const d of snapDisks) {
      const vdi = await f.source.getRecord('VDI', d)
      expect(vdi.other_config).toMatchObject({
        [KEYS.datetime]: dt,
        [KEYS.job]: job.id,
        [KEYS.exported]: 'true',
        [KEYS.contentKey]: vdi.uuid,
      })
    }

    expect(rep.name_label).toMatch(/^web - nightly - \(\d{8}T\d{6}Z\)$/)
    expect(rep.blocked_operations).toEqual({ start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE })
    expect(rep.tags).toContain(REPLICA_TAG)
    expect(rep.ha_restart_priority).toBe('')
    expect(rep.other_config).toMatchObject({
      [KEYS.copyOf]: snap.uuid,
      [KEYS.job]: job.id,
      [KEYS.schedule]: job.schedules[0]!.id,
      [KEYS.vm]: f.vmUuid,
      [KEYS.sr]: f.srs['Replica A'],
    })
    expect(rep.other_config[KEYS.datetime]).toMatch(/^\d{8}T\d{2}:\d{2}:\d{2}Z$/)
    expect(rep.other_config[KEYS.datetime]).not.toBe(PLACEHOLDER_DATETIME)
    const repDisks = await disksOf(f.target, repRef)
    expect(repDisks).toHaveLength(2)
    for (const [i, d] of repDisks.entries()) {
      const vdi = await f.target.getRecord('VDI', d)
      const src = await f.source.getRecord('VDI', snapDisks[i]!)
      expect(vdi.other_config).toMatchObject({
        [KEYS.copyOf]: src.uuid,
        [KEYS.contentKey]: src.uuid,
        [KEYS.sr]: f.srs['Replica A'],
        [KEYS.datetime]: rep.other_config[KEYS.datetime],
      })
    }
    expect(rep.VIFs).toHaveLength(1)
  })

  it('replicates a 64 GiB sparse disk by its allocated blocks only, full then delta', async () => {
    const GiB = 1024 * MiB
    f = await startFixture({
      pools: [
        {
          name: 'src',
          srs: [{ name: 'Local storage' }],
          vms: [{ name: 'web', disks: [{ size: '64 GiB', filled: '4 MiB', seed: 5 }] }],
        },
        { name: 'tgt', srs: [{ name: 'Replica A' }] },
      ],
    })
    const job = makeJob(f)
    const first = await runPass({ job, source: f.source, target: f.target })
    expect(first.results[0]?.status === 'success' && first.results[0].bytes).toBe(vhdLength(64 * GiB, 2))
    // a block near the end of the disk changes
    const far = 30_000
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [far], seed: 77 })
    const second = await runPass({ job, source: f.source, target: f.target })
    expect(second.results).toMatchObject([{ status: 'success', mode: 'delta' }])
    expect(second.results[0]?.status === 'success' && second.results[0].bytes).toBe(vhdLength(64 * GiB, 1))
    const reps = await replicas(f.target, job.id, f.vmUuid)
    const [replicaDisk] = await disksOf(f.target, reps[1]![0])
    const uuid = (await f.target.getRecord('VDI', replicaDisk!)).uuid
    for (const block of [0, 1, far]) {
      const want = await f.lab.control.readGuestData('src', f.vmUuid, block * BLOCK, BLOCK)
      expect((await f.lab.control.readGuestData('tgt', uuid, block * BLOCK, BLOCK)).equals(want)).toBe(true)
    }
  })
})
