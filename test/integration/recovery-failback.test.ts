import { afterEach, describe, expect, it } from 'vitest'
import { KEYS, RECOVERY_KEYS, REPLICA_TAG, leaseKeyPrefix } from '../../src/replication/metadata.js'
import type { XapiClient } from '../../src/xapi/client.js'
import { listVmDisks } from '../../src/xapi/vbd.js'
import type { Ref, VmRecord } from '../../src/xapi/types.js'
import { DISK_RETRY } from '../../src/xapi/retry.js'
import { cleanShutdownVm } from '../../src/xapi/vm.js'
import {
  HOUR,
  counts,
  diskHashes,
  eventOf,
  events,
  pass,
  plainVms,
  replicaState,
  replicasOf,
  startRecoveryFixture,
  type RecoveryFixture,
} from './recovery-fixture.js'
import { MiB, connect, disksOf, vhdLength } from './replication-fixture.js'

let f: RecoveryFixture | undefined
let source: XapiClient | undefined
afterEach(async () => {
  await source?.close()
  source = undefined
  await f?.close()
  f = undefined
})

const t0 = new Date(Date.UTC(2026, 7, 21, 12, 0, 0))
const t1 = new Date(t0.getTime() + HOUR)
const tFailover = new Date(t1.getTime() + 5 * 60_000)
const tFailback = new Date(t1.getTime() + 3 * HOUR)
const tResume = new Date(tFailback.getTime() + HOUR)

interface FailoverResult {
  status: string
  vm: { name: string; uuid: string }
  failoverVm: { uuid: string; name: string }
  replica: { uuid: string }
}
interface FailbackSuccess {
  status: 'success'
  failedOver: { uuid: string; name: string }
  mode: 'new' | 'in-place'
  vm: { uuid: string; name: string }
  original?: { uuid: string }
  replica: { uuid: string }
  bytes: number
  disks: { userdevice: string; bytes: number }[]
  started: boolean
  resume: { snapshot?: { uuid: string }; replicas: { uuid: string }[]; fullOn: string[] }
}
type FailbackResult =
  | FailbackSuccess
  | { status: 'failed' | 'refused'; failedOver: { name: string }; error: { code: string; message: string } }
interface FailbackDone {
  results: FailbackResult[]
  jobVms: { from: string; to: string }[]
}
interface VmDone {
  result: { status: string; vm: { name: string; uuid: string }; mode: string; bytes: number }
}

/** Full at t0, a block written in each guest, delta at t1. */
async function twoPasses(fx: RecoveryFixture): Promise<void> {
  await pass(fx, t0, 'full')
  await fx.lab.control.writeGuestData('src', fx.vmUuid, { blocks: [1], seed: 3 })
  await fx.lab.control.writeGuestData('src', fx.dbUuid, { blocks: [0], seed: 4 })
  await pass(fx, t1, 'delta')
}

/** Loses the source pool, fails the whole job over and returns the failover VMs by source VM name. */
async function loseSourceAndFailOver(
  fx: RecoveryFixture,
  haltVms: boolean,
): Promise<Map<string, { ref: Ref<'VM'>; uuid: string; replica: string }>> {
  await fx.lab.control.poolDown('src', { haltVms })
  // the job's source really is gone: a pass cannot even log in
  expect((await fx.cli(['run', 'nightly'])).code).toBe(4)
  const done = await fx.cli(['--json', 'failover', 'nightly'], { now: tFailover })
  expect(done.err).toBe('')
  expect(done.code).toBe(0)
  const out = new Map<string, { ref: Ref<'VM'>; uuid: string; replica: string }>()
  for (const r of eventOf<{ results: FailoverResult[] }>(done.out, 'failover-done').results) {
    expect(r.status).toBe('success')
    const ref = await fx.target.getByUuid('VM', r.failoverVm.uuid)
    expect((await fx.target.getRecord('VM', ref)).power_state).toBe('Running')
    out.set(r.vm.name, { ref, uuid: r.failoverVm.uuid, replica: r.replica.uuid })
  }
  return out
}

/** What failback must leave as it was on a failed-over VM: its identity, state, keys and bytes. */
async function failedOverState(client: XapiClient, vm: Ref<'VM'>): Promise<unknown> {
  const r = await client.getRecord('VM', vm)
  return {
    power_state: r.power_state,
    other_config: r.other_config,
    blocked_operations: r.blocked_operations,
    tags: r.tags,
    VBDs: r.VBDs,
    snapshots: r.snapshots,
    disks: await Promise.all(
      (await listVmDisks(client, r.VBDs)).map(async d => ({ uuid: d.vdi.uuid, other_config: d.vdi.other_config })),
    ),
    hashes: await diskHashes(client, vm),
  }
}

/**
 * No replica tag, no replication or recovery key on it or its disks, start not blocked. An
 * original written in place (`job`) is the job's source VM again: the job's released lease
 * entries (tombstones carrying its last replication, see vm-lease.ts) stay on it, and no live
 * lease may.
 */
async function expectProductionVm(client: XapiClient, ref: Ref<'VM'>, job?: string): Promise<VmRecord> {
  const vm = await client.getRecord('VM', ref)
  expect(vm.tags).not.toContain(REPLICA_TAG)
  expect(vm.blocked_operations).toEqual({})
  const foreign = (keys: string[]): string[] => keys.filter(k => k.startsWith('xo:') || k.startsWith('xen-cr:'))
  const leases = Object.entries(vm.other_config).filter(([k]) => job !== undefined && k.startsWith(leaseKeyPrefix(job)))
  for (const [, value] of leases) expect(JSON.parse(value)).toMatchObject({ released: true })
  expect(foreign(Object.keys(vm.other_config)).filter(k => !leases.some(([l]) => l === k))).toEqual([])
  for (const disk of await listVmDisks(client, vm.VBDs)) expect(foreign(Object.keys(disk.vdi.other_config))).toEqual([])
  return vm
}

/** The final byte count of each disk transfer, from the disk-progress events (as a pass reports them). */
function finalDiskBytes(out: string): Map<string, number> {
  const last = new Map<string, number>()
  for (const e of events(out).filter(e => e.kind === 'disk-progress')) {
    const p = e as unknown as { vm: { name: string }; disk: { userdevice: string }; bytes: number; total?: number }
    if (p.total !== undefined && p.bytes === p.total) last.set(`${p.vm.name}/${p.disk.userdevice}`, p.bytes)
  }
  return last
}

describe('xen-cr failback', () => {
  it('sends a two-VM job back as deltas of exactly the blocks written since failover, byte-equal, leaves nothing else, and the job resumes with a delta', async () => {
    f = await startRecoveryFixture()
    await twoPasses(f)
    const failedOver = await loseSourceAndFailOver(f, false)
    const web = failedOver.get('web')!
    const db = failedOver.get('db')!
    // the failover VMs say where they came from, outside the replication keys
    expect((await f.target.getRecord('VM', web.ref)).other_config[RECOVERY_KEYS.failoverReplica]).toBe(web.replica)

    // Production runs on the target: k = 3 blocks of web (2 on its root disk, 1 on its data disk), 1 of db.
    const [webRoot, webData] = await disksOf(f.target, web.ref)
    await f.lab.control.writeGuestData('tgt', web.uuid, { blocks: [2, 6], seed: 11 })
    await f.lab.control.writeGuestData('tgt', (await f.target.getRecord('VDI', webData!)).uuid, {
      blocks: [3],
      seed: 12,
    })
    await f.lab.control.writeGuestData('tgt', db.uuid, { blocks: [1], seed: 13 })
    expect(webRoot).toBeDefined()

    await f.lab.control.poolUp('src')
    source = await connect(f.lab, 'src')
    // Planned failback of web: its failover VM is shut down first; db's keeps running.
    await cleanShutdownVm(f.target, web.ref)
    const replicas = [...(await replicasOf(f, f.vmUuid)), ...(await replicasOf(f, f.dbUuid))]
    const replicasBefore = await Promise.all(replicas.map(([ref]) => replicaState(f!.target, ref)))
    const failedOverBefore = await Promise.all([web.ref, db.ref].map(ref => failedOverState(f!.target, ref)))
    const countsBefore = { source: await counts(source), target: await counts(f.target) }

    // A dry run names what would travel from where, and changes nothing.
    const dry = await f.cli(['failback', 'nightly', '--dry-run'], { now: tFailback })
    expect(dry.err).toBe('')
    expect(dry.code).toBe(0)
    expect(dry.out).toMatch(
      /web \(failover\) \(.+\): would send the blocks written since the replica of 20260821T13:00:00Z onto clones of the base snapshot's disks, as the new VM "web"/,
    )
    expect({ source: await counts(source), target: await counts(f.target) }).toEqual(countsBefore)

    const back = await f.cli(['--json', 'failback', 'nightly'], { now: tFailback })
    expect(back.code).toBe(0)
    const warnings = events(back.out).filter(e => e.kind === 'warning')
    expect(warnings.map(w => [w['code'], (w['vm'] as { name: string }).name])).toEqual([
      ['FAILED_OVER_VM_RUNNING', 'db (failover)'],
    ])
    const done = eventOf<FailbackDone>(back.out, 'failback-done')
    const results = done.results as FailbackSuccess[]
    expect(results.map(r => [r.failedOver.name, r.status, r.mode, r.vm.name, r.started])).toEqual([
      ['db (failover)', 'success', 'new', 'db', false],
      ['web (failover)', 'success', 'new', 'web', true],
    ])
    const [dbBack, webBack] = results as [FailbackSuccess, FailbackSuccess]

    // Only the changed blocks travelled: k × (2 MiB + its 512-byte bitmap) plus each disk's VHD framing.
    expect(webBack.disks.map(d => [d.userdevice, d.bytes])).toEqual([
      ['0', vhdLength(16 * MiB, 2)],
      ['1', vhdLength(8 * MiB, 1)],
    ])
    expect(webBack.bytes).toBe(vhdLength(16 * MiB, 2) + vhdLength(8 * MiB, 1))
    expect(dbBack.bytes).toBe(vhdLength(8 * MiB, 1))
    // the progress events a pass would give say the same
    expect(finalDiskBytes(back.out)).toEqual(
      new Map([
        ['web (failover)/0', vhdLength(16 * MiB, 2)],
        ['web (failover)/1', vhdLength(8 * MiB, 1)],
        ['db (failover)/0', vhdLength(8 * MiB, 1)],
      ]),
    )

    // The new VMs hold exactly the failed-over VMs' bytes and are ordinary production VMs.
    const webNew = await source.getByUuid('VM', webBack.vm.uuid)
    const dbNew = await source.getByUuid('VM', dbBack.vm.uuid)
    expect(await diskHashes(source, webNew)).toEqual(await diskHashes(f.target, web.ref))
    expect(await diskHashes(source, dbNew)).toEqual(await diskHashes(f.target, db.ref))
    expect((await expectProductionVm(source, webNew)).power_state).toBe('Running')
    expect((await expectProductionVm(source, dbNew)).power_state).toBe('Halted')

    // Never modified: the failover VMs (still running or halted as they were) and every replica.
    expect(await Promise.all([web.ref, db.ref].map(ref => failedOverState(f!.target, ref)))).toEqual(failedOverBefore)
    expect(await Promise.all(replicas.map(([ref]) => replicaState(f!.target, ref)))).toEqual(replicasBefore)

    // Nothing else is left: per VM the new VM and the job's new base (a snapshot on the source
    // with its disks, a replica on the target made of clones), and no failback snapshot.
    expect(await counts(source)).toEqual({
      vms: countsBefore.source.vms + 4,
      vdis: countsBefore.source.vdis + 6,
    })
    expect(await counts(f.target)).toEqual({ vms: countsBefore.target.vms + 2, vdis: countsBefore.target.vdis + 3 })
    const targetVms = [...(await f.target.getAllRecords('VM')).values()]
    expect(targetVms.filter(v => v.name_label.startsWith('[xen-cr failback]'))).toEqual([])
    for (const r of results) {
      expect(r.resume.fullOn).toEqual([])
      expect(r.resume.replicas).toHaveLength(1)
    }

    // The job now replicates the new VMs: its store says so, and the next pass is a delta of
    // exactly what they wrote since the failback.
    expect(done.jobVms).toEqual(
      expect.arrayContaining([
        { from: f.vmUuid, to: webBack.vm.uuid },
        { from: f.dbUuid, to: dbBack.vm.uuid },
      ]),
    )
    const shown = eventOf<{ job: { vms: { uuids: string[] } } }>(
      (await f.cli(['--json', 'job', 'show', 'nightly'])).out,
      'job-show',
    )
    expect([...shown.job.vms.uuids].sort()).toEqual([webBack.vm.uuid, dbBack.vm.uuid].sort())
    await f.lab.control.writeGuestData('src', webBack.vm.uuid, { blocks: [4], seed: 21 })
    const resumed = await f.cli(['--json', 'run', 'nightly'], { now: tResume })
    expect(resumed.err).toBe('')
    expect(resumed.code).toBe(0)
    const passed = events(resumed.out)
      .filter(e => e.kind === 'vm-done')
      .map(e => (e as unknown as VmDone).result)
      .sort((a, b) => a.vm.name.localeCompare(b.vm.name))
    expect(passed.map(r => [r.vm.name, r.status, r.mode, r.bytes])).toEqual([
      ['db', 'success', 'delta', vhdLength(8 * MiB, 0)],
      ['web', 'success', 'delta', vhdLength(16 * MiB, 1) + vhdLength(8 * MiB, 0)],
    ])
    // replica = source, byte for byte (nothing was written since the pass)
    for (const vm of [webBack.vm.uuid, dbBack.vm.uuid]) {
      const newest = (await replicasOf(f, vm)).at(-1)!
      expect(await diskHashes(f.target, newest[0])).toEqual(await diskHashes(source, await source.getByUuid('VM', vm)))
    }
    expect(await replicasOf(f, webBack.vm.uuid)).toHaveLength(2)
    expect([...(await plainVms(f.target)).values()].map(v => v.name_label)).toContain('web (failover)')
  })

  it('in place: refuses an original changed since the base, resumes an in-place write that was cut, and the job goes on from the original with a delta', async () => {
    f = await startRecoveryFixture()
    await twoPasses(f)
    // a power cut: the source VMs are halted when the site comes back
    const failedOver = await loseSourceAndFailOver(f, true)
    const web = failedOver.get('web')!
    const db = failedOver.get('db')!
    await f.lab.control.writeGuestData('tgt', web.uuid, { blocks: [2], seed: 31 })
    await f.lab.control.writeGuestData('tgt', db.uuid, { blocks: [3], seed: 32 })
    for (const vm of [web, db]) await cleanShutdownVm(f.target, vm.ref)
    await f.lab.control.poolUp('src')
    source = await connect(f.lab, 'src')
    // web's original was written to after its last replica (lost writes): it is not the base any more
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [5], seed: 33 })
    const before = { source: await counts(source), target: await counts(f.target) }

    // db's import is cut halfway, every attempt (a one-shot cut is retried, DISK_RETRY): nothing
    // is left on the target, and db's original cannot be started
    f.lab.control.injectFault('src', { kind: 'data-path', direction: 'import', cutAfterBytes: 1_000_000 })
    const first = await f.cli(['--json', 'failback', 'nightly', '--in-place'], { now: tFailback })
    expect(first.code).toBe(1)
    const firstResults = eventOf<FailbackDone>(first.out, 'failback-done').results
    // refusals come first, as failover lists them
    expect(firstResults.map(r => [r.failedOver.name, r.status, 'error' in r ? r.error.code : undefined])).toEqual([
      ['web (failover)', 'refused', 'IN_PLACE_REFUSED'],
      ['db (failover)', 'failed', 'XAPI_VDI_IO_ERROR'],
    ])
    expect((firstResults[1] as { error: { message: string } }).error.message).toMatch(
      /the original VM's disks are partly written: its start stays blocked until a failback --in-place of db \(failover\) completes$/,
    )
    const refusal = firstResults[0] as { error: { message: string } }
    expect(refusal.error.message).toMatch(
      /the original VM web \(.+\) changed since the base snapshot of 20260821T13:00:00Z: disk 0 \(web root\) has 1 block written since; nothing written: fail back to a new VM instead/,
    )
    expect({ source: await counts(source), target: await counts(f.target) }).toEqual(before)
    const cut = await source.getRecord('VM', f.dbRef)
    expect(cut.blocked_operations['start']).toMatch(/interrupted: its disks are partly written/)
    expect(cut.other_config[RECOVERY_KEYS.failbackInPlace]).toBe(db.replica)

    // Again: the cut write is resumed from the same replica and completed.
    f.lab.control.clearFaults('src')
    const second = await f.cli(['--json', 'failback', 'nightly', '--in-place', '--vm', 'db (failover)'], {
      now: tFailback,
    })
    expect(second.err).toBe('')
    expect(second.code).toBe(0)
    expect(events(second.out).some(e => e.kind === 'warning' && e['code'] === 'FAILBACK_RESUMED')).toBe(true)
    const done = eventOf<FailbackDone>(second.out, 'failback-done')
    const [dbBack] = done.results as FailbackSuccess[]
    expect(dbBack).toMatchObject({ status: 'success', mode: 'in-place', vm: { uuid: f.dbUuid }, started: true })
    expect(dbBack!.bytes).toBe(vhdLength(8 * MiB, 1))
    expect(done.jobVms).toEqual([])
    expect(await diskHashes(source, f.dbRef)).toEqual(await diskHashes(f.target, db.ref))
    const jobId = (await replicasOf(f, f.dbUuid))[0]![1].other_config[KEYS.job]!
    expect((await expectProductionVm(source, f.dbRef, jobId)).power_state).toBe('Running')
    // the job's new base for db: one snapshot on the source, one replica (clones) on the target
    expect(await counts(source)).toEqual({ vms: before.source.vms + 1, vdis: before.source.vdis + 1 })
    expect(await counts(f.target)).toEqual({ vms: before.target.vms + 1, vdis: before.target.vdis + 1 })

    // web stays refused, one line, exit 5, nothing written
    const again = await f.cli(['failback', 'nightly', '--in-place', '--vm', 'web (failover)'], { now: tFailback })
    expect(again.code).toBe(5)
    expect(again.err).toMatch(/web \(failover\): refused: .* has 1 block written since.*\[IN_PLACE_REFUSED\]/)

    // The job goes on from the originals: db sends nothing it already has, web sends its lost write.
    const resumed = await f.cli(['--json', 'run', 'nightly'], { now: tResume })
    expect(resumed.code).toBe(0)
    const passed = events(resumed.out)
      .filter(e => e.kind === 'vm-done')
      .map(e => (e as unknown as VmDone).result)
      .sort((a, b) => a.vm.name.localeCompare(b.vm.name))
    expect(passed.map(r => [r.vm.name, r.mode, r.bytes])).toEqual([
      ['db', 'delta', vhdLength(8 * MiB, 0)],
      ['web', 'delta', vhdLength(16 * MiB, 1) + vhdLength(8 * MiB, 0)],
    ])
    expect(await diskHashes(f.target, (await replicasOf(f, f.dbUuid)).at(-1)![0])).toEqual(
      await diskHashes(source, f.dbRef),
    )
  })

  it('refuses what it cannot send as a delta, one line each, and a failed transfer leaves nothing on either pool', async () => {
    f = await startRecoveryFixture()
    await pass(f, t0, 'full')
    const none = await f.cli(['failback', 'nightly'])
    expect(none.code).toBe(5)
    expect(none.err).toMatch(
      /job "nightly" has no VM made by xen-cr failover on pool tgt; nothing to fail back \[NOT_FAILED_OVER\]/,
    )

    const over = await f.cli(['--json', 'failover', 'nightly', '--vm', 'web', '--no-start'], { now: tFailover })
    expect(over.code).toBe(0)
    const [webOver] = eventOf<{ results: FailoverResult[] }>(over.out, 'failover-done').results
    const webRef = await f.target.getByUuid('VM', webOver!.failoverVm.uuid)
    await f.lab.control.writeGuestData('tgt', webOver!.failoverVm.uuid, { blocks: [0], seed: 41 })

    const unknown = await f.cli(['failback', 'nightly', '--vm', 'nosuch'])
    expect(unknown.code).toBe(5)
    expect(unknown.err.trim().split('\n')).toHaveLength(1)
    expect(unknown.err).toMatch(
      /nosuch: refused: no VM made by xen-cr failover of job nightly on the target pool matches nosuch \[NOT_FAILED_OVER\]/,
    )

    // the second disk's import breaks: the new VM, its disks and the snapshot on the target all go
    const before = { source: await counts(f.source), target: await counts(f.target) }
    const failedOverBefore = await failedOverState(f.target, webRef)
    // the first import goes through; every import after it is cut, as many times as the disk's
    // retries try it again
    for (let nth = 2; nth <= DISK_RETRY.attempts + 1; nth++)
      f.lab.control.injectFault('src', { kind: 'data-path', direction: 'import', cutAfterBytes: 1_000, nth })
    const broken = await f.cli(['failback', 'nightly'], { now: tFailback })
    f.lab.control.clearFaults('src')
    expect(broken.code).toBe(1)
    expect(broken.err).toMatch(/web \(failover\): failback failed: .*; what it had made was removed \[/)
    expect({ source: await counts(f.source), target: await counts(f.target) }).toEqual(before)
    expect(await failedOverState(f.target, webRef)).toEqual(failedOverBefore)
    const jobAfterFailure = eventOf<{ job: { vms: { uuids: string[] } } }>(
      (await f.cli(['--json', 'job', 'show', 'nightly'])).out,
      'job-show',
    )
    expect(jobAfterFailure.job.vms.uuids).toContain(f.vmUuid)

    // the replica it came from is deleted: there is no base any more
    // (a disk import cut once is started again: this failback succeeds all the same)
    f.lab.control.injectFault('src', { kind: 'data-path', direction: 'import', cutAfterBytes: 1_000, nth: 1 })
    const ok = await f.cli(['--json', 'failback', 'nightly', '--no-start'], { now: tFailback })
    expect(f.lab.control.listFaults('src')).toEqual([])
    expect(ok.code).toBe(0)
    const deleted = await f.cli(['replicas', 'delete', 'nightly', '--replica', webOver!.replica.uuid, '--yes'])
    expect(deleted.code).toBe(0)
    const gone = await f.cli(['failback', 'nightly'], { now: tResume })
    expect(gone.code).toBe(5)
    expect(gone.err).toMatch(/is no longer on the target pool .*there is no base for a delta \[FAILBACK_NO_BASE\]/)
  })
})
