import { afterEach, describe, expect, it } from 'vitest'
import { runPass } from '../../src/replication/pass.js'
import type { PassEvent } from '../../src/replication/events.js'
import { KEYS } from '../../src/replication/metadata.js'
import { setVdiOtherConfig } from '../../src/xapi/vdi.js'
import { setVmNameLabel, setVmOtherConfig, snapshotVm, startVm, unblockOperation } from '../../src/xapi/vm.js'
import {
  disksOf,
  expectReplicaMatches,
  jobSnapshots,
  makeJob,
  rawSha256,
  replicas,
  startFixture,
  type Fixture,
} from './replication-fixture.js'

let f: Fixture | undefined
afterEach(async () => {
  await f?.close()
  f = undefined
})

const XO_BACKUP_KEYS = [
  KEYS.datetime,
  KEYS.job,
  KEYS.schedule,
  KEYS.vm,
  KEYS.sr,
  KEYS.exported,
  KEYS.deltaChainLength,
  KEYS.contentKey,
]
const none = (keys: readonly string[]): Record<string, null> => Object.fromEntries(keys.map(k => [k, null]))

async function passAndCheck(fx: Fixture, job: ReturnType<typeof makeJob>, events: PassEvent[] = []) {
  const result = await runPass({ job, source: fx.source, target: fx.target, onEvent: e => events.push(e) })
  const snaps = await jobSnapshots(fx.source, job.id, fx.vmRef)
  const reps = await replicas(fx.target, job.id, fx.vmUuid)
  return { result, snaps, reps }
}

describe('continuing targets of other eras', () => {
  it('continues an era-A seed (keys as xo-cr-seed 1.0.2 writes them) with a delta', async () => {
    f = await startFixture()
    const job = makeJob(f)
    await runPass({ job, source: f.source, target: f.target })
    const [snapRef, snap] = (await jobSnapshots(f.source, job.id, f.vmRef))[0]!
    const [repRef] = (await replicas(f.target, job.id, f.vmUuid))[0]!
    // Reduce our metadata to what xo-cr-seed leaves: VM-level keys on the snapshot (datetime =
    // snapshot_time, exported), VM-level keys on the target VM, and only xo:copy_of on its disks.
    await setVmOtherConfig(f.source, snapRef, { [KEYS.deltaChainLength]: null, [KEYS.datetime]: snap.snapshot_time })
    for (const d of await disksOf(f.source, snapRef)) await setVdiOtherConfig(f.source, d, none(XO_BACKUP_KEYS))
    await setVmOtherConfig(f.target, repRef, { [KEYS.deltaChainLength]: null, [KEYS.datetime]: snap.snapshot_time })
    await setVmNameLabel(f.target, repRef, `web (${snap.snapshot_time})`)
    for (const d of await disksOf(f.target, repRef)) await setVdiOtherConfig(f.target, d, none(XO_BACKUP_KEYS))

    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [1], seed: 5 })
    const { result, snaps, reps } = await passAndCheck(f, job)
    expect(result.plans[0]?.base?.era).toBe('A')
    expect(result.results).toMatchObject([{ status: 'success', mode: 'delta' }])
    const h = await expectReplicaMatches(f, reps[reps.length - 1]![0], snaps[0]![0])
    expect(h.replica).toEqual(h.snapshot)
  })

  it('continues an era-B target (VDI-level keys, no content key) with a delta', async () => {
    f = await startFixture()
    const job = makeJob(f)
    await runPass({ job, source: f.source, target: f.target })
    const [snapRef] = (await jobSnapshots(f.source, job.id, f.vmRef))[0]!
    const [repRef] = (await replicas(f.target, job.id, f.vmUuid))[0]!
    for (const d of await disksOf(f.source, snapRef)) await setVdiOtherConfig(f.source, d, { [KEYS.contentKey]: null })
    for (const d of await disksOf(f.target, repRef)) await setVdiOtherConfig(f.target, d, { [KEYS.contentKey]: null })
    await setVmOtherConfig(f.target, repRef, { [KEYS.deltaChainLength]: null })

    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [0, 7], seed: 6 })
    const { result, snaps, reps } = await passAndCheck(f, job)
    expect(result.plans[0]?.base?.era).toBe('B')
    expect(result.results).toMatchObject([{ status: 'success', mode: 'delta' }])
    const h = await expectReplicaMatches(f, reps[reps.length - 1]![0], snaps[0]![0])
    expect(h.replica).toEqual(h.snapshot)
  })
  it('continues an era-C target (one live replica, keys on its snapshot) with a delta from the target snapshot', async () => {
    f = await startFixture()
    const job = makeJob(f)
    await runPass({ job, source: f.source, target: f.target })
    const [repRef] = (await replicas(f.target, job.id, f.vmUuid))[0]!
    // XO 6.3+: the replica is snapshotted on the target (the snapshot keeps every key), then the
    // live replica's keys are reset except xo:backup:sr.
    const targetSnap = await snapshotVm(f.target, repRef, 'web - nightly / hourly 20260101T000000Z')
    const reset = none([
      KEYS.datetime,
      KEYS.job,
      KEYS.schedule,
      KEYS.vm,
      KEYS.copyOf,
      KEYS.contentKey,
      KEYS.deltaChainLength,
    ])
    await setVmOtherConfig(f.target, repRef, reset)
    for (const d of await disksOf(f.target, repRef)) await setVdiOtherConfig(f.target, d, reset)

    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [2], seed: 14 })
    const { result, snaps } = await passAndCheck(f, job)
    expect(result.results).toMatchObject([{ status: 'success', mode: 'delta' }])
    expect(result.plans[0]?.targets[0]?.baseReplica?.ref).toBe(targetSnap)
    // The in-place VM is the job's copy (its snapshot carries the keys): the pass gives it the
    // job's keys and that snapshot's datetime (IN_PLACE_REPLICA_KEYED), so no tool strands it once
    // the snapshot is gone. It is not the pass's new replica.
    const all = await replicas(f.target, job.id, f.vmUuid)
    const inPlace = all.find(([ref]) => ref === repRef)
    expect(inPlace?.[1].other_config[KEYS.datetime]).toBe(
      (await f.target.getAllRecords('VM')).get(targetSnap)?.other_config[KEYS.datetime],
    )
    const newest = all.filter(([ref]) => ref !== targetSnap && ref !== repRef)
    expect(newest).toHaveLength(1)
    const h = await expectReplicaMatches(f, newest[0]![0], snaps[0]![0])
    expect(h.replica).toEqual(h.snapshot)
  })
})

describe('a pass never corrupts or loses a replica', () => {
  it('sends a full copy when the base replica was started, and leaves that VM alone', async () => {
    f = await startFixture()
    const job = makeJob(f, {}, 1)
    await runPass({ job, source: f.source, target: f.target })
    const [repRef] = (await replicas(f.target, job.id, f.vmUuid))[0]!
    await unblockOperation(f.target, repRef, 'start')
    await unblockOperation(f.target, repRef, 'start_on')
    await startVm(f.target, repRef)
    // the booted guest writes to its disk: a delta on top of this would be silently wrong
    const [repDisk] = await disksOf(f.target, repRef)
    await f.lab.control.writeGuestData('tgt', repDisk!, { blocks: [3], seed: 66 })

    const events: PassEvent[] = []
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [1], seed: 8 })
    const { result, snaps, reps } = await passAndCheck(f, job, events)
    expect(result.results).toMatchObject([{ status: 'success', mode: 'full' }])
    expect(events.filter(e => e.kind === 'warning').map(e => e.kind === 'warning' && e.code)).toContain(
      'REPLICA_NOT_SAFE_BASE',
    )
    const newest = reps.find(([ref]) => ref !== repRef)!
    const h = await expectReplicaMatches(f, newest[0], snaps[0]![0])
    expect(h.replica).toEqual(h.snapshot)
    // retention 1 rotated nothing away: the started VM is someone's VM now
    expect(reps.map(([ref]) => ref)).toContain(repRef)
  })

  it('a transfer failing mid-stream leaves the previous replica and base intact, nothing behind, and the next pass is a delta', async () => {
    f = await startFixture()
    const job = makeJob(f)
    await runPass({ job, source: f.source, target: f.target })
    const [snap1, snap1Rec] = (await jobSnapshots(f.source, job.id, f.vmRef))[0]!
    const [rep1] = (await replicas(f.target, job.id, f.vmUuid))[0]!
    const rep1Hashes = await Promise.all((await disksOf(f.target, rep1)).map(d => rawSha256(f!.target, d)))
    const census = async () => ({
      tgtVms: (await f!.target.getAllRecords('VM')).size,
      tgtVdis: (await f!.target.getAllRecords('VDI')).size,
      srcVms: (await f!.source.getAllRecords('VM')).size,
      srcVdis: (await f!.source.getAllRecords('VDI')).size,
    })
    const before = await census()
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [0, 4], seed: 9 })

    // 1: every import connection is cut after 1 MiB of the disk: the disk's retries (DISK_RETRY)
    // meet the same cut and the pass fails (a one-shot cut is retried: see the next test)
    f.lab.control.injectFault('tgt', { kind: 'data-path', direction: 'import', cutAfterBytes: 1024 * 1024 })
    const cut = await runPass({ job, source: f.source, target: f.target })
    expect(cut.results).toMatchObject([{ status: 'failed' }])
    // 2: every byte arrives but every export task fails
    f.lab.control.clearFaults()
    f.lab.control.injectFault('src', {
      kind: 'data-path',
      direction: 'export',
      failTask: ['VDI_IO_ERROR', 'Device I/O errors'],
    })
    const failedTask = await runPass({ job, source: f.source, target: f.target })
    expect(failedTask.results).toMatchObject([{ status: 'failed' }])
    f.lab.control.clearFaults()

    expect(await census()).toEqual(before)
    const snaps = await jobSnapshots(f.source, job.id, f.vmRef)
    expect(snaps.map(([ref]) => ref)).toEqual([snap1])
    expect(snaps[0]![1].other_config[KEYS.exported]).toBe('true')
    const reps = await replicas(f.target, job.id, f.vmUuid)
    expect(reps.map(([ref]) => ref)).toEqual([rep1])
    expect(await Promise.all((await disksOf(f.target, rep1)).map(d => rawSha256(f!.target, d)))).toEqual(rep1Hashes)

    const next = await passAndCheck(f, job)
    expect(next.result.plans[0]?.base?.uuid).toBe(snap1Rec.uuid)
    expect(next.result.results).toMatchObject([{ status: 'success', mode: 'delta' }])
    const h = await expectReplicaMatches(f, next.reps[next.reps.length - 1]![0], next.snaps[0]![0])
    expect(h.replica).toEqual(h.snapshot)
  })

  it('a transfer cut once mid-stream is retried: the disk starts again and the pass succeeds with a replica equal to its snapshot', async () => {
    f = await startFixture()
    const job = makeJob(f)
    await runPass({ job, source: f.source, target: f.target })
    const [snap1, snap1Rec] = (await jobSnapshots(f.source, job.id, f.vmRef))[0]!
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [0, 4], seed: 19 })
    f.lab.control.injectFault('tgt', { kind: 'data-path', direction: 'import', cutAfterBytes: 1024 * 1024, nth: 1 })
    const { result, snaps, reps } = await passAndCheck(f, job)
    // the cut happened (the one-shot fault is spent) and did not fail the pass
    expect(f.lab.control.listFaults('tgt')).toEqual([])
    expect(result.plans[0]?.base?.uuid).toBe(snap1Rec.uuid)
    expect(result.results).toMatchObject([{ status: 'success', mode: 'delta' }])
    expect(snaps.map(([ref]) => ref)).not.toContain(snap1)
    const h = await expectReplicaMatches(f, reps[reps.length - 1]![0], snaps[0]![0])
    expect(h.replica).toEqual(h.snapshot)
    for (const client of [f.source, f.target]) {
      expect(
        [...(await client.getAllRecords('VDI')).values()]
          .filter(v => v.managed && v.VBDs.length === 0)
          .map(v => v.name_label),
      ).toEqual([])
    }
  })

  it('an abort mid-transfer (SIGINT) removes everything the pass created and keeps the previous replica', async () => {
    f = await startFixture()
    const job = makeJob(f)
    await runPass({ job, source: f.source, target: f.target })
    const [rep1] = (await replicas(f.target, job.id, f.vmUuid))[0]!
    const census = async () => [
      (await f!.target.getAllRecords('VM')).size,
      (await f!.target.getAllRecords('VDI')).size,
      (await f!.source.getAllRecords('VM')).size,
    ]
    const before = await census()
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [0, 1, 2, 3, 4, 5, 6, 7], seed: 12 })
    // slow exports so that the abort lands while bytes are flowing
    f.lab.control.injectFault('src', { kind: 'data-path', direction: 'export', bytesPerSecond: 4 * 1024 * 1024 })
    const controller = new AbortController()
    const result = await runPass({
      job,
      source: f.source,
      target: f.target,
      signal: controller.signal,
      onEvent: e => {
        if (e.kind === 'disk-progress') controller.abort()
      },
    })
    f.lab.control.clearFaults()
    expect(result.results).toMatchObject([{ status: 'failed', error: { code: 'ABORTED' } }])
    expect(await census()).toEqual(before)
    expect((await replicas(f.target, job.id, f.vmUuid)).map(([ref]) => ref)).toEqual([rep1])
  })

  it('debris a crashed pass could not clean up (placeholder replica, unexported snapshot) is removed by the next good pass', async () => {
    f = await startFixture()
    const job = makeJob(f)
    await runPass({ job, source: f.source, target: f.target })
    const [rep1] = (await replicas(f.target, job.id, f.vmUuid))[0]!
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [5], seed: 13 })
    // the transfer fails (every attempt is cut) and so does every VM.destroy: the cleanup cannot
    // finish, as after a crash
    f.lab.control.injectFault('tgt', { kind: 'data-path', direction: 'import', cutAfterBytes: 4096 })
    for (const pool of ['src', 'tgt'])
      f.lab.control.injectFault(pool, {
        kind: 'error',
        method: 'VM.destroy',
        code: 'INTERNAL_ERROR',
        params: ['injected'],
      })
    const events: PassEvent[] = []
    const crashed = await runPass({ job, source: f.source, target: f.target, onEvent: e => events.push(e) })
    f.lab.control.clearFaults()
    expect(crashed.results).toMatchObject([{ status: 'failed' }])
    expect(events.some(e => e.kind === 'warning' && e.code === 'CLEANUP_FAILED')).toBe(true)
    const leftovers = (await replicas(f.target, job.id, f.vmUuid)).filter(([ref]) => ref !== rep1)
    expect(leftovers.map(([, r]) => r.other_config[KEYS.datetime])).toEqual(['19700101T000000Z'])
    expect(await jobSnapshots(f.source, job.id, f.vmRef)).toHaveLength(2)

    const next = await passAndCheck(f, job)
    expect(next.result.results).toMatchObject([{ status: 'success', mode: 'delta' }])
    expect(next.reps.map(([ref]) => ref)).not.toContain(leftovers[0]![0])
    expect(next.reps).toHaveLength(2)
    expect(next.snaps).toHaveLength(1)
    const h = await expectReplicaMatches(f, next.reps[1]![0], next.snaps[0]![0])
    expect(h.replica).toEqual(h.snapshot)
    // and no disk was orphaned on either pool (XO #5721)
    for (const client of [f.source, f.target]) {
      expect(
        // base copies (managed = false) have no VBD on a real VHD SR either
        [...(await client.getAllRecords('VDI')).values()]
          .filter(v => v.managed && v.VBDs.length === 0)
          .map(v => v.name_label),
      ).toEqual([])
    }
  })
})
