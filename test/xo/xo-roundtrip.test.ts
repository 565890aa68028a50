/**
 * `npm run test:xo` (opt-in, not part of `npm test`): Xen Orchestra's own backup code
 * (`@xen-orchestra/backups`, installed in test/xo by `npm install` there) runs incremental
 * replication jobs against the lab through its backup worker, forked as xo-server forks it
 * (`runBackupWorker`), alternating with `xen-cr run` on the same job and schedule ids, in both
 * orders: XO full → XO delta → xen-cr delta on XO's replica → XO delta on xen-cr's, and xen-cr
 * full → xen-cr delta → XO delta → xen-cr delta. Every continuation must be a delta, the newest
 * copy must equal the source and nothing may be left stranded on the SR. XO's code is installed
 * in test/xo by `npm ci` there, with shims and older versions standing in for what the registry
 * lacks (`missing-packages.ts`, `shims/README.md`). Not installed, or not loading, the test is
 * skipped and says why.
 */
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Job } from '../../src/jobs/types.js'
import { KEYS } from '../../src/replication/metadata.js'
import { runPass } from '../../src/replication/pass.js'
import { labPool } from '../helpers/lab.js'
import { auditSr, newestCopyMatchesSource } from '../integration/mixed-chains-fixture.js'
import { makeJob, startFixture, type Fixture } from '../integration/replication-fixture.js'
import { missingPackagesText } from './missing-packages.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const BACKUPS = join(HERE, 'node_modules', '@xen-orchestra', 'backups')
const RETENTION = 2

type RunBackupWorker = (params: Record<string, unknown>, onLog?: (log: unknown) => void) => Promise<unknown>

/** XO's worker, or why it cannot run: the whole job runner is loaded first, so a missing package shows here. */
async function loadXo(): Promise<{ run: RunBackupWorker } | { missing: string }> {
  if (!existsSync(join(BACKUPS, 'package.json')))
    return {
      missing: `@xen-orchestra/backups is not installed in test/xo: run \`npm ci\` in test/xo first (its overrides stand in for what the registry lacks: ${missingPackagesText()})`,
    }
  try {
    await import(pathToFileURL(join(BACKUPS, 'Backup.mjs')).href)
    const worker = (await import(pathToFileURL(join(BACKUPS, 'runBackupWorker.mjs')).href)) as {
      runBackupWorker: RunBackupWorker
    }
    return { run: worker.runBackupWorker }
  } catch (error) {
    return {
      missing: `@xen-orchestra/backups does not load (${error instanceof Error ? error.message : String(error)}); what the registry lacks and test/xo installs instead: ${missingPackagesText()}`,
    }
  }
}

const xo = await loadXo()

let f: Fixture
beforeEach(async () => {
  f = await startFixture()
})
afterEach(async () => {
  await f?.close()
})

/** One XO incremental replication run of the job, as xo-server hands it to its backup worker. */
async function xoRun(run: RunBackupWorker, job: Job): Promise<'full' | 'delta'> {
  const src = labPool(f.lab, 'src')
  const tgt = labPool(f.lab, 'tgt')
  const scheduleId = job.schedules[0]!.id
  const srUuid = job.srs[0]!
  const xapi = (p: typeof src) => ({
    url: p.url,
    credentials: { username: p.user, password: p.password },
    allowUnauthorized: true,
  })
  const logs: { type?: string; status?: string; result?: unknown; message?: string; data?: unknown }[] = []
  const done = run(
    {
      config: {
        snapshotNameLabelTpl: '[XO Backup {job.name}] {vm.name_label}',
        defaultSettings: {},
        vm: { defaultSettings: {} },
      },
      job: {
        id: job.id,
        name: job.name,
        mode: 'delta',
        type: 'backup',
        vms: { id: f.vmUuid },
        srs: { id: srUuid },
        settings: {
          '': { copyRetention: RETENTION, snapshotRetention: 0 },
          [scheduleId]: { copyRetention: RETENTION },
        },
      },
      schedule: { id: scheduleId, jobId: job.id, name: 'lab', enabled: true, cron: '0 * * * *' },
      recordToXapi: { [f.vmUuid]: 'src', [srUuid]: 'tgt' },
      xapis: { src: xapi(src), tgt: xapi(tgt) },
      remotes: {},
      remoteOptions: {},
      resourceCacheDelay: '0s',
      xapiOptions: {},
    },
    log => logs.push(log as (typeof logs)[number]),
  )
  try {
    await done
  } catch (error) {
    throw new Error(`XO's backup worker failed: ${JSON.stringify(error)}; ${xoFailures(logs)}`)
  }
  // a VM whose backup failed does not fail the job: its task does
  const failures = xoFailures(logs)
  if (failures !== '') throw new Error(`XO's run of the job failed: ${failures}`)
  // what XO wrote on its new snapshot: 0 after a full, the chain length after a delta
  const snaps = [...(await f.source.getAllRecords('VM'))]
    .filter(([, v]) => v.is_a_snapshot && v.snapshot_of === f.vmRef && v.other_config[KEYS.job] === job.id)
    .sort(([, a], [, b]) => (b.other_config[KEYS.datetime] ?? '').localeCompare(a.other_config[KEYS.datetime] ?? ''))
  expect(snaps[0]?.[1].other_config[KEYS.exported]).toBe('true')
  return snaps[0]?.[1].other_config[KEYS.deltaChainLength] === '0' ? 'full' : 'delta'
}

/** The failed tasks and warnings of an XO run's log, one line. */
function xoFailures(
  logs: readonly { type?: string; status?: string; result?: unknown; message?: string; data?: unknown }[],
): string {
  return logs
    .filter(l => (l.type === 'end' && l.status === 'failure') || l.type === 'warning')
    .map(l =>
      l.type === 'warning'
        ? `warning ${l.message ?? ''} ${JSON.stringify(l.data)}`
        : `failure ${JSON.stringify(l.result)}`,
    )
    .join(' | ')
}

async function xenCr(job: Job): Promise<string> {
  const result = await runPass({ job, source: f.source, target: f.target })
  const [vm] = result.results
  expect(vm?.status, JSON.stringify(vm)).toBe('success')
  return vm?.status === 'success' ? vm.mode : 'failed'
}

let writes = 0
async function guestWrites(): Promise<void> {
  writes++
  await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [writes % 8, (writes + 4) % 8], seed: 200 + writes })
}

/**
 * Nothing stranded, the newest copy is the source's state, and the job has its retention's worth
 * of copies — one more after an XO run whose retention deleted the last snapshot of XO's in-place
 * VM: XO picks what to delete before its transfer, so that VM counts from the next run on.
 */
async function expectClean(job: Job, after: 'xo' | 'xen-cr', runs = RETENTION): Promise<void> {
  const audit = await auditSr(f.target, job.srs[0]!, job.id)
  expect(audit.strandedVms).toEqual([])
  expect(audit.strandedVdis).toEqual([])
  // fewer while the first runs build the chain up
  expect(audit.copies).toBeGreaterThanOrEqual(Math.min(RETENTION, runs))
  expect(audit.copies).toBeLessThanOrEqual(after === 'xo' ? RETENTION + 1 : RETENTION)
  expect(await newestCopyMatchesSource(f, job.id, job.srs[0]!)).toBe(true)
}

if ('missing' in xo) {
  // the reason in the output too, not only in the skipped test's title
  console.warn(`npm run test:xo skipped: ${xo.missing}`)
  describe('Xen Orchestra round trip (npm run test:xo)', () => {
    it.skip(`skipped: ${xo.missing}`, () => undefined)
  })
} else {
  const { run } = xo
  describe('Xen Orchestra round trip (npm run test:xo)', () => {
    it('XO full → XO delta → xen-cr delta on XO’s replica → XO delta on xen-cr’s', async () => {
      const job = makeJob(f, {}, RETENTION)
      expect(await xoRun(run, job)).toBe('full')
      await guestWrites()
      expect(await xoRun(run, job)).toBe('delta')
      await expectClean(job, 'xo')
      await guestWrites()
      expect(await xenCr(job)).toBe('delta')
      await expectClean(job, 'xen-cr')
      await guestWrites()
      expect(await xoRun(run, job)).toBe('delta')
      await expectClean(job, 'xo')
    })

    it('xen-cr full → xen-cr delta → XO delta on xen-cr’s replica → xen-cr delta on XO’s', async () => {
      const job = makeJob(f, {}, RETENTION)
      expect(await xenCr(job)).toBe('full')
      await guestWrites()
      expect(await xenCr(job)).toBe('delta')
      await guestWrites()
      expect(await xoRun(run, job)).toBe('delta')
      await expectClean(job, 'xo')
      await guestWrites()
      expect(await xenCr(job)).toBe('delta')
      await expectClean(job, 'xen-cr')
    })

    it('seven alternating runs keep the job at its retention, XO rotating the VM xen-cr keyed', async () => {
      const job = makeJob(f, {}, RETENTION)
      const steps: readonly ('xo' | 'xen-cr')[] = ['xo', 'xo', 'xen-cr', 'xo', 'xo', 'xen-cr', 'xo']
      for (const [i, step] of steps.entries()) {
        if (i > 0) await guestWrites()
        const mode = step === 'xo' ? await xoRun(run, job) : await xenCr(job)
        expect(mode).toBe(i === 0 ? 'full' : 'delta')
        await expectClean(job, step, i + 1)
      }
    })
  })
}
