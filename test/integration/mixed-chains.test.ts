/**
 * Mixed-tool chains (issue 10): whichever tool made the previous replica — Xen Orchestra in era A,
 * B or C (6.3+: one replica VM updated in place, keyed target snapshots), `xo-cr-seed` 1.0.2, or
 * xen-cr — xen-cr continues it with a delta, counts every copy of the job on the SR in its
 * retention, and leaves nothing behind: after each step no VM or disk on the SR is without a
 * key or link to the job. Then XO (era C) continues xen-cr's replica with a delta, and xen-cr
 * XO's again. Each predecessor is built through the XAPI calls that tool makes
 * (`mixed-chains-fixture.ts`).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Job } from '../../src/jobs/types.js'
import { KEYS } from '../../src/replication/metadata.js'
import { runPass, type PassResult } from '../../src/replication/pass.js'
import type { PassEvent } from '../../src/replication/events.js'
import {
  auditSr,
  newestCopyMatchesSource,
  xoCrSeedCopy,
  xoInterruptedEraA,
  xoRun,
  type XoEra,
  type XoJob,
} from './mixed-chains-fixture.js'
import { makeJob, startFixture, type Fixture } from './replication-fixture.js'

const RETENTION = 2
const HOUR = 3_600_000

let f: Fixture
let clock: number
let writes: number
beforeEach(async () => {
  f = await startFixture()
  // after the lab's own clock (xo-cr-seed's datetime is the snapshot's real time), whole seconds
  clock = Math.ceil(Date.now() / 1000) * 1000 + 24 * HOUR
  writes = 0
})
afterEach(async () => {
  await f.close()
})

const tick = (): Date => new Date((clock += HOUR))

/** Changes two blocks of the source VM's root disk, so that the next run has something to send. */
async function guestWrites(): Promise<void> {
  writes++
  await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [writes % 8, (writes + 4) % 8], seed: 100 + writes })
}

function xoJob(job: Job): XoJob {
  return {
    jobId: job.id,
    scheduleId: job.schedules[0]!.id,
    jobName: job.name,
    srUuid: job.srs[0]!,
    retention: RETENTION,
  }
}

/** One xen-cr pass; resolves to its single VM's result and the warnings it gave. */
async function xenCr(job: Job): Promise<{ mode: string; warnings: string[]; result: PassResult }> {
  const at = tick()
  const events: PassEvent[] = []
  const result = await runPass({
    job,
    source: f.source,
    target: f.target,
    now: () => at,
    onEvent: e => events.push(e),
  })
  const [vm] = result.results
  expect(vm?.status, JSON.stringify(vm)).toBe('success')
  const warnings = events.flatMap(e => (e.kind === 'warning' ? [`${e.code}: ${e.message}`] : []))
  return { mode: vm?.status === 'success' ? vm.mode : 'failed', warnings, result }
}

/**
 * After each step: the copies the job has (`[min, max]` after an XO run: XO's retention picks what
 * to delete before its transfer, so an in-place VM whose last snapshot it deletes is counted, by
 * both tools, only from the next run on), nothing stranded, no stale flag, the newest copy is the
 * source's state.
 */
async function expectClean(job: Job, copies: number | readonly [number, number]): Promise<void> {
  const audit = await auditSr(f.target, job.srs[0]!, job.id)
  expect(audit.strandedVms).toEqual([])
  expect(audit.strandedVdis).toEqual([])
  expect(audit.staleFixFlags).toEqual([])
  const [min, max] = typeof copies === 'number' ? [copies, copies] : copies
  expect(audit.copies).toBeGreaterThanOrEqual(min)
  expect(audit.copies).toBeLessThanOrEqual(max)
  expect(await newestCopyMatchesSource(f, job.id, job.srs[0]!)).toBe(true)
}

interface Predecessor {
  readonly name: string
  /** builds its layout on the job's SR; resolves to the number of copies it leaves */
  readonly build: (job: Job) => Promise<number>
}

const xoChain =
  (era: XoEra) =>
  async (job: Job): Promise<number> => {
    expect(await xoRun(f, xoJob(job), era, tick())).toBe('full')
    await guestWrites()
    expect(await xoRun(f, xoJob(job), era, tick())).toBe('delta')
    return RETENTION
  }

const PREDECESSORS: readonly Predecessor[] = [
  { name: 'Xen Orchestra era A (≤ 5.95: keys on VMs, a new replica per run)', build: xoChain('A') },
  { name: 'Xen Orchestra era B (5.96–6.2: keys on VMs and disks, a new replica per run)', build: xoChain('B') },
  { name: 'Xen Orchestra era C (6.3+: one replica updated in place, keyed target snapshots)', build: xoChain('C') },
  {
    name: 'xo-cr-seed 1.0.2 (a by-hand copy keyed on the VM, disks paired by userdevice)',
    build: async job => {
      await xoCrSeedCopy(f, xoJob(job))
      return 1
    },
  },
  {
    name: 'xen-cr',
    build: async job => {
      expect((await xenCr(job)).mode).toBe('full')
      await guestWrites()
      expect((await xenCr(job)).mode).toBe('delta')
      return RETENTION
    },
  },
]

describe('xen-cr continues any tool’s chain with a delta, and no copy is stranded', () => {
  it.each(PREDECESSORS)(
    '$name → xen-cr → xen-cr → XO (era C) → xen-cr → XO (era C) → xen-cr',
    async ({ build }) => {
      const job = makeJob(f, {}, RETENTION)
      const left = await build(job)
      await expectClean(job, left)

      // xen-cr continues it: a delta, and retention counts the predecessor's copies
      await guestWrites()
      expect((await xenCr(job)).mode).toBe('delta')
      await expectClean(job, RETENTION)
      await guestWrites()
      expect((await xenCr(job)).mode).toBe('delta')
      await expectClean(job, RETENTION)

      // XO continues xen-cr's replica (its legacy fallback: the disks' xo:copy_of), and back
      for (let round = 0; round < 2; round++) {
        await guestWrites()
        expect(await xoRun(f, xoJob(job), 'C', tick())).toBe('delta')
        await expectClean(job, [RETENTION, RETENTION + 1])
        await guestWrites()
        expect((await xenCr(job)).mode).toBe('delta')
        await expectClean(job, RETENTION)
      }
    },
    300_000,
  )

  it.each(['A', 'B', 'C'] as const)(
    'XO era %s continues xen-cr’s replica with a delta, and xen-cr XO’s',
    async era => {
      const job = makeJob(f, {}, RETENTION)
      expect((await xenCr(job)).mode).toBe('full')
      await guestWrites()
      expect((await xenCr(job)).mode).toBe('delta')
      await guestWrites()
      expect(await xoRun(f, xoJob(job), era, tick())).toBe('delta')
      await expectClean(job, [RETENTION, RETENTION + 1])
      await guestWrites()
      expect((await xenCr(job)).mode).toBe('delta')
      await expectClean(job, RETENTION)
    },
    300_000,
  )

  it('deletes the copy an interrupted XO era-A run left without xo:backup:sr (XO never does)', async () => {
    const job = makeJob(f, {}, RETENTION)
    expect((await xenCr(job)).mode).toBe('full')
    const debris = await xoInterruptedEraA(f, xoJob(job), tick())
    const before = await auditSr(f.target, job.srs[0]!, job.id)
    expect(before.strandedVms).toHaveLength(1)
    await guestWrites()
    expect((await xenCr(job)).mode).toBe('delta')
    await expect(f.target.getRecord('VM', debris)).rejects.toThrow(/HANDLE_INVALID/)
    await expectClean(job, 2)
  }, 300_000)

  it('gives the in-place VM of XO 6.3+ the job’s keys, so that XO’s own retention still counts it after its last snapshot', async () => {
    const job = makeJob(f, {}, 3)
    const x = { ...xoJob(job), retention: 3 }
    expect(await xoRun(f, x, 'C', tick())).toBe('full')
    await guestWrites()
    expect(await xoRun(f, x, 'C', tick())).toBe('delta')
    const holder = [...(await f.target.getAllRecords('VM'))].find(
      ([, v]) => !v.is_a_snapshot && v.other_config[KEYS.sr] === x.srUuid && v.snapshots.length > 0,
    )
    expect(holder).toBeDefined()
    // XO leaves only xo:backup:sr on it
    expect(holder![1].other_config[KEYS.job]).toBeUndefined()

    await guestWrites()
    const pass = await xenCr(job)
    expect(pass.mode).toBe('delta')
    expect(pass.warnings.some(w => w.startsWith('IN_PLACE_REPLICA_KEYED'))).toBe(true)
    const keyed = await f.target.getRecord('VM', holder![0])
    expect(keyed.other_config).toMatchObject({
      [KEYS.job]: job.id,
      [KEYS.schedule]: job.schedules[0]!.id,
      [KEYS.vm]: f.vmUuid,
      [KEYS.sr]: x.srUuid,
    })
    // no xo:copy_of: a VM XO updates in place is never a base
    expect(keyed.other_config[KEYS.copyOf]).toBeUndefined()
    await expectClean(job, 3)

    // XO runs on with retention 1 and deletes the in-place VM's snapshots: the VM is now one of
    // its old-style replicas, which its retention rotates (before, it was left behind forever)
    const one = { ...x, retention: 1 }
    await guestWrites()
    expect(await xoRun(f, one, 'C', tick())).toBe('delta')
    await guestWrites()
    expect(await xoRun(f, one, 'C', tick())).toBe('delta')
    const audit = await auditSr(f.target, x.srUuid, job.id)
    expect(audit.strandedVms).toEqual([])
    expect(audit.strandedVdis).toEqual([])
    await expect(f.target.getRecord('VM', holder![0])).rejects.toThrow(/HANDLE_INVALID/)
  }, 300_000)

  it('removes XO’s qcow2-fix flag from the disks it clones from XO’s target snapshots (xen-cr does not claim XO’s fix)', async () => {
    const job = makeJob(f, {}, RETENTION)
    expect(await xoRun(f, xoJob(job), 'C', tick())).toBe('full')
    const snaps = [...(await f.target.getAllRecords('VDI'))].filter(
      ([, v]) => v.is_a_snapshot && v.other_config[KEYS.includeNonNbdQcow2Fix] === 'true',
    )
    expect(snaps.length).toBe(2)
    await guestWrites()
    const pass = await xenCr(job)
    expect(pass.mode).toBe('delta')
    const done = pass.result.results[0]
    const replica = done?.status === 'success' ? done.replicas[0] : undefined
    const ref = await f.target.getByUuid('VM', replica!.uuid)
    const vm = await f.target.getRecord('VM', ref)
    expect(vm.other_config[KEYS.includeNonNbdQcow2Fix]).toBeUndefined()
    for (const vbd of vm.VBDs) {
      const { VDI, type } = await f.target.getRecord('VBD', vbd)
      if (type !== 'Disk') continue
      const disk = await f.target.getRecord('VDI', VDI)
      expect(disk.other_config[KEYS.includeNonNbdQcow2Fix]).toBeUndefined()
      expect(disk.other_config[KEYS.copyOf]).toBeDefined()
    }
    await expectClean(job, RETENTION)
  }, 300_000)
})
