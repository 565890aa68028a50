import { Writable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import { holdVmLease } from '../helpers/vm-lease.js'
import { replicas, startFixture, type Fixture } from './replication-fixture.js'

let f: Fixture | undefined
afterEach(async () => {
  await f?.close()
  f = undefined
})

/** Runs the CLI in-process against the lab's config; stdout is not a TTY, so lines are plain or NDJSON. */
async function cli(fx: Fixture, args: string[], now?: Date): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _e, cb) {
        append(chunk.toString())
        cb()
      },
    })
  const code = await run(['--config', fx.lab.configPath, ...args], {
    stdout: sink(s => (out += s)),
    stderr: sink(s => (err += s)),
    env: { HOME: fx.lab.dir, XDG_CONFIG_HOME: fx.lab.dir },
    cwd: fx.lab.dir,
    ...(now === undefined ? {} : { now: () => now }),
  })
  return { code, out, err }
}

const events = (out: string): { kind: string; [k: string]: unknown }[] =>
  out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map(l => JSON.parse(l) as { kind: string })

describe('xen-cr run and list', () => {
  it('plans, runs a full then a delta pass, lists the replicas and knows when the job is due', async () => {
    f = await startFixture()
    const created = await cli(f, [
      'job',
      'create',
      '--name',
      'nightly',
      '--source',
      'src',
      '--target',
      'tgt',
      '--sr',
      f.srs['Replica A']!,
      '--vm',
      f.vmUuid,
      '--interval',
      '1h',
      '--retention',
      '2',
    ])
    expect(created.err).toBe('')
    expect(created.code).toBe(0)

    const dry = await cli(f, ['--json', 'run', 'nightly', '--dry-run'])
    expect(dry.code).toBe(0)
    const plan = events(dry.out).find(e => e.kind === 'pass-plan') as { plans: { mode: string }[] } | undefined
    expect(plan?.plans.map(p => p.mode)).toEqual(['full'])

    const first = await cli(f, ['run', 'nightly', '--json'])
    expect(first.code).toBe(0)
    const done1 = events(first.out).filter(e => e.kind === 'vm-done') as unknown as {
      result: { status: string; mode: string; bytes: number }
    }[]
    expect(done1.map(e => [e.result.status, e.result.mode])).toEqual([['success', 'full']])

    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [1], seed: 3 })
    // an hour later, as cron would: replicas are named and dated to the second
    const hourLater = new Date(Date.now() + 3_600_000)
    const second = await cli(f, ['run', 'nightly'], hourLater)
    expect(second.code).toBe(0)
    // a log: timestamped, ASCII (ok, not ✓)
    expect(second.out).toMatch(/Z ok web: delta, .* sent in/)

    const listed = await cli(f, ['--json', 'list', 'nightly'], hourLater)
    expect(listed.code).toBe(0)
    const listing = events(listed.out).find(e => e.kind === 'replica-list') as unknown as {
      listings: { vms: { vm: { name: string }; status: string; replicas: { chain: string; complete: boolean }[] }[] }[]
    }
    expect(listing.listings[0]?.vms).toMatchObject([{ vm: { name: 'web' }, status: 'ok' }])
    expect(listing.listings[0]?.vms[0]?.replicas.map(r => r.chain)).toEqual(['delta', 'full'])

    const table = await cli(f, ['list'])
    expect(table.out).toMatch(/job "nightly"/)
    expect(table.out).toMatch(/web - nightly - \(\d{8}T\d{6}Z\)/)

    // judged from the target alone: not due right after a pass, due two hours later
    const notDue = await cli(f, ['run', '--due'], hourLater)
    expect(notDue.code).toBe(0)
    expect(notDue.out).toMatch(/not due/)
    const later = await cli(f, ['--json', 'run', '--due'], new Date(hourLater.getTime() + 2 * 3_600_000))
    expect(later.code).toBe(0)
    expect(events(later.out).filter(e => e.kind === 'vm-done')).toHaveLength(1)
  })

  it('exits 1 when a VM fails and says why', async () => {
    f = await startFixture()
    await cli(f, [
      'job',
      'create',
      '--name',
      'j',
      '--source',
      'src',
      '--target',
      'tgt',
      '--sr',
      f.srs['Replica A']!,
      '--vm',
      f.vmUuid,
      '--interval',
      '1h',
    ])
    f.lab.control.injectFault('src', {
      kind: 'error',
      method: 'VM.snapshot',
      code: 'SR_BACKEND_FAILURE_44',
      params: ['', 'no space', ''],
    })
    const failed = await cli(f, ['run', 'j', '--vm', f.vmUuid])
    expect(failed.code).toBe(1)
    expect(failed.err).toMatch(/Z FAILED web: .*SR_BACKEND_FAILURE_44/)
    const stranger = await cli(f, ['run', 'j', '--vm', '00000000-0000-4000-8000-000000000000'])
    expect(stranger.code).toBe(2)
    expect(stranger.err).toMatch(/not selected by job j.*\[VM_NOT_IN_JOB\]/)
  })

  it("does nothing and exits 3 while another controller holds the VM's lease in XAPI", async () => {
    f = await startFixture()
    await cli(f, [
      'job',
      'create',
      '--name',
      'j',
      '--source',
      'src',
      '--target',
      'tgt',
      '--sr',
      f.srs['Replica A']!,
      '--vm',
      f.vmUuid,
      '--interval',
      '1h',
    ])
    const shown = events((await cli(f, ['--json', 'job', 'show', 'j'])).out).find(
      e => e.kind === 'job-show',
    ) as unknown as { job: { id: string } }
    // a run on another controller holds the VM's lease in XAPI
    await holdVmLease(f.source, f.vmUuid, shown.job.id)
    const held = await cli(f, ['run', 'j'])
    expect(held.code).toBe(3)
    expect(held.out).toMatch(/web: skipped, leased by controller-elsewhere\/4242 until \S+Z/)
    const due = await cli(f, ['--json', 'run', '--due'])
    expect(due.code).toBe(3)
    const done = events(due.out).find(e => e.kind === 'run-due-done') as unknown as {
      jobs: { name: string; status: string; vms: { status: string; reason?: string }[] }[]
    }
    expect(done.jobs).toMatchObject([{ name: 'j', status: 'leased', vms: [{ status: 'skipped', reason: 'leased' }] }])
    expect(await replicas(f.target, shown.job.id, f.vmUuid)).toEqual([])
  })
})
