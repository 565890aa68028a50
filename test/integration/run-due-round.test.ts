/**
 * `run --due` and a VM replicated by another run after the round fell due. Controllers started by
 * one cron line do not all start at once: on a busy host one may start after another has already
 * replicated a VM of the round, and it must not replicate that VM again. The round is dated from
 * the schedule (when its stalest replica fell due), not from the process start. Shown here with
 * the CLI's clock moved forward, one run after the other, through the real CLI against the lab.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import { JobStore } from '../../src/jobs/job-store.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { makeTempDir } from '../helpers/tmp.js'
import { SPEC, makeJob, startFixture, type Fixture } from './replication-fixture.js'

const HOUR = 3_600_000

const TWO_VMS = {
  pools: [
    {
      ...SPEC.pools[0]!,
      vms: [
        ...SPEC.pools[0]!.vms!,
        {
          name: 'db',
          powerState: 'Halted' as const,
          disks: [{ name: 'db root', size: '8 MiB', filled: '2 MiB', seed: 7 }],
          networks: ['Pool-wide network associated with eth0'],
        },
      ],
    },
    SPEC.pools[1]!,
  ],
}

let f: Fixture
let tmp: { path: string; remove: () => Promise<void> }
let jobsFile: string
const uuids: Record<string, string> = {}

beforeAll(async () => {
  f = await startFixture(TWO_VMS)
  tmp = await makeTempDir('xen-cr-run-due-round-')
  for (const vm of (await f.source.getAllRecords('VM')).values()) uuids[vm.name_label] = vm.uuid
  jobsFile = join(tmp.path, 'jobs.json')
  await new JobStore(jobsFile).add(makeJob(f, { vms: { uuids: [uuids['web']!, uuids['db']!], tags: [], all: false } }))
}, 120_000)

afterAll(async () => {
  await f?.close()
  await tmp?.remove()
})

async function cli(args: readonly string[], now: Date) {
  const stdout = new CaptureStream()
  const code = await run(['--config', f.lab.configPath, '--jobs-file', jobsFile, '--json', ...args], {
    stdout,
    stderr: new CaptureStream(),
    env: {},
    cwd: tmp.path,
    now: () => now,
  })
  const results = stdout.lines
    .map(
      line => JSON.parse(line) as { kind: string; result?: { status: string; reason?: string; vm: { name: string } } },
    )
    .filter(e => e.kind === 'vm-done')
    .map(e => ({
      vm: e.result!.vm.name,
      status: e.result!.status,
      ...(e.result!.reason ? { reason: e.result!.reason } : {}),
    }))
  return { code, results }
}

describe('run --due after another run replicated a VM of the due round', () => {
  it('skips that VM as replicated and replicates the others, whatever the process start', async () => {
    const t0 = new Date()
    const first = await cli(['run', 'nightly'], t0)
    expect(first.code).toBe(0)
    expect(first.results.map(r => r.status)).toEqual(['success', 'success'])

    // two hours on the round is due; another run (say, a controller that started first) replicates web
    const other = await cli(['run', 'nightly', '--vm', uuids['web']!], new Date(t0.getTime() + 2 * HOUR))
    expect(other.results).toEqual([{ vm: 'web', status: 'success' }])

    // a minute later this run --due starts: db's replica is still two hours old, so the job is
    // due, and web, replicated after the round fell due, is that other run's work
    const due = await cli(['run', '--due'], new Date(t0.getTime() + 2 * HOUR + 60_000))
    expect(due.code).toBe(0)
    expect(due.results).toEqual(
      expect.arrayContaining([
        { vm: 'web', status: 'skipped', reason: 'replicated' },
        { vm: 'db', status: 'success' },
      ]),
    )
    expect(due.results).toHaveLength(2)
  }, 120_000)
})
