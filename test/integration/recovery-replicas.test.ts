import { afterEach, describe, expect, it } from 'vitest'
import { KEYS } from '../../src/replication/metadata.js'
import type { XapiClient } from '../../src/xapi/client.js'
import {
  HOUR,
  configWithSourceDown,
  counts,
  diskHashes,
  eventOf,
  events,
  pass,
  replicasOf,
  startRecoveryFixture,
  type RecoveryFixture,
} from './recovery-fixture.js'

let f: RecoveryFixture | undefined
afterEach(async () => {
  await f?.close()
  f = undefined
})

const t0 = new Date(Date.UTC(2026, 7, 21, 12, 0, 0))
const t1 = new Date(t0.getTime() + HOUR)

interface Listing {
  vms: {
    vm: { uuid: string; name: string }
    replicas: {
      uuid: string
      datetime: string
      ageMs: number
      protected: boolean
      complete: boolean
      chain: string
      srName: string
    }[]
  }[]
}

/** Snapshots on the source that carry the job's id. */
async function jobSnapshotCount(client: XapiClient, jobId: string): Promise<number> {
  return [...(await client.getAllRecords('VM')).values()].filter(
    v => v.is_a_snapshot && v.other_config[KEYS.job] === jobId,
  ).length
}

async function twoPasses(fx: RecoveryFixture): Promise<string> {
  await pass(fx, t0, 'full')
  await fx.lab.control.writeGuestData('src', fx.vmUuid, { blocks: [1], seed: 3 })
  await pass(fx, t1, 'delta')
  const shown = await fx.cli(['--json', 'job', 'show', 'nightly'])
  return eventOf<{ job: { id: string } }>(shown.out, 'job-show').job.id
}

describe('xen-cr replicas', () => {
  it('lists every replica per VM, deletes one or all with confirmation, and job delete --purge empties both pools of the job', async () => {
    f = await startRecoveryFixture()
    const jobId = await twoPasses(f)
    const later = new Date(t1.getTime() + 5 * 60_000)

    const listed = await f.cli(['--json', 'replicas', 'nightly'], { now: later })
    expect(listed.err).toBe('')
    expect(listed.code).toBe(0)
    const listing = eventOf<Listing>(listed.out, 'job-replicas')
    expect(listing.vms.map(v => v.vm.name)).toEqual(['db', 'web'])
    for (const vm of listing.vms) {
      expect(vm.replicas.map(r => [r.datetime, r.ageMs, r.protected, r.complete, r.chain, r.srName])).toEqual([
        ['20260821T13:00:00Z', 5 * 60_000, true, true, 'delta', 'Replica A'],
        ['20260821T12:00:00Z', 65 * 60_000, true, true, 'full', 'Replica A'],
      ])
      expect(vm.replicas.map(r => r.uuid)).toEqual((await replicasOf(f, vm.vm.uuid)).map(([, r]) => r.uuid).reverse())
    }
    const one = await f.cli(['replicas', 'nightly', '--vm', 'web'], { now: later })
    expect(one.out).toMatch(/^web \(.+\): 2 replicas\n {2}UUID +DATETIME +AGE +PROTECTED +COMPLETE +CHAIN +STATE +SR\n/)
    expect(one.out).not.toMatch(/^db/m)

    // a failover VM: never this job's to delete
    const failover = await f.cli(['--json', 'failover', 'nightly', '--vm', 'web', '--no-start'])
    expect(failover.code).toBe(0)
    const failoverUuid = eventOf<{ results: { failoverVm: { uuid: string } }[] }>(failover.out, 'failover-done')
      .results[0]!.failoverVm.uuid
    const failoverRef = await f.target.getByUuid('VM', failoverUuid)
    const failoverData = await diskHashes(f.target, failoverRef)

    const target0 = await counts(f.target)
    const source0 = await counts(f.source)
    expect(await jobSnapshotCount(f.source, jobId)).toBe(2)

    // no terminal and no --yes: the plan is shown, nothing goes, exit 2
    const unconfirmed = await f.cli(['replicas', 'delete', 'nightly', '--all'])
    expect(unconfirmed.code).toBe(2)
    expect(unconfirmed.out).toMatch(
      /4 replica\(s\) on the target pool and 2 snapshot\(s\) on the source pool to delete/,
    )
    expect(unconfirmed.err).toMatch(/add --yes; nothing deleted \[CONFIRMATION_REQUIRED\]/)
    // a terminal, and the answer is no
    const declined = await f.cli(['replicas', 'delete', 'nightly', '--all', '--vm', 'db'], { answer: 'no' })
    expect(declined.code).toBe(0)
    expect(declined.err).toMatch(/Type yes to confirm/)
    expect(declined.out).toMatch(/nothing deleted/)
    expect(declined.out).toMatch(/2 replica\(s\) on the target pool and 1 snapshot\(s\) on the source pool to delete/)
    expect([await counts(f.target), await counts(f.source)]).toEqual([target0, source0])

    // exactly one replica, VM and disks
    const [olderWeb] = await replicasOf(f, f.vmUuid)
    const single = await f.cli(['replicas', 'delete', 'nightly', '--replica', olderWeb![1].uuid, '--yes'])
    expect(single.err).toBe('')
    expect(single.code).toBe(0)
    expect(await replicasOf(f, f.vmUuid)).toHaveLength(1)
    expect(await counts(f.target)).toEqual({ vms: target0.vms - 1, vdis: target0.vdis - 2 })

    // not provably the job's: refused, nothing deleted
    const stranger = await f.cli(['replicas', 'delete', 'nightly', '--replica', failoverUuid, '--yes'])
    expect(stranger.code).toBe(5)
    expect(stranger.err).toMatch(/is not a replica of job nightly .*\[REPLICA_NOT_IN_JOB\]/)
    const neither = await f.cli(['replicas', 'delete', 'nightly', '--yes'])
    expect(neither.code).toBe(2)
    expect(neither.err).toMatch(/\[NOTHING_CHOSEN\]/)

    // the job and everything it made, answered yes on a terminal
    const purged = await f.cli(['job', 'delete', 'nightly', '--purge'], { answer: 'yes' })
    expect(purged.code).toBe(0)
    expect(purged.out).toMatch(/3 replica\(s\) on the target pool and 2 snapshot\(s\) on the source pool to delete/)
    expect(purged.out).toMatch(/5 object\(s\) deleted/)
    expect(purged.out).toMatch(/deleted job .* \(nightly\)/)
    expect([...(await replicasOf(f, f.vmUuid)), ...(await replicasOf(f, f.dbUuid))]).toEqual([])
    expect(await jobSnapshotCount(f.source, jobId)).toBe(0)
    expect(await counts(f.target)).toEqual({ vms: target0.vms - 4, vdis: target0.vdis - 2 - 2 - 1 - 1 })
    expect(await counts(f.source)).toEqual({ vms: source0.vms - 2, vdis: source0.vdis - 3 })
    expect(await diskHashes(f.target, failoverRef)).toEqual(failoverData)
    const jobs = await f.cli(['--json', 'job', 'list'])
    expect(eventOf<{ jobs: unknown[] }>(jobs.out, 'job-list').jobs).toEqual([])
  })

  it('purges the replicas with the source pool unreachable, says its snapshots stay, and keeps nothing else of the job', async () => {
    f = await startRecoveryFixture()
    const jobId = await twoPasses(f)
    const down = await configWithSourceDown(f)
    const source0 = await counts(f.source)

    const purged = await f.cli(['--json', 'job', 'delete', 'nightly', '--purge', '--yes'], { config: down })
    expect(purged.code).toBe(0)
    const warnings = events(purged.out).filter(e => e.kind === 'warning')
    expect(warnings.map(w => w['code'])).toEqual(['SOURCE_UNREACHABLE'])
    expect(eventOf<{ deleted: number; failed: number }>(purged.out, 'deletion-done')).toMatchObject({
      deleted: 4,
      failed: 0,
    })
    expect([...(await replicasOf(f, f.vmUuid)), ...(await replicasOf(f, f.dbUuid))]).toEqual([])
    expect(await counts(f.source)).toEqual(source0)
    expect(await jobSnapshotCount(f.source, jobId)).toBe(2)
  })
})
