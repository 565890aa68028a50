/**
 * Every line `--json` writes against the lab is valid against docs/events.schema.json: a job's
 * creation, a dry run, a full and a delta pass (progress included), a failed VM, `list`,
 * `list --check`, the inventory, `job edit`, and errors — which must be alone on stderr, one
 * JSON line each, with stdout holding only the data.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { validateEventLine } from '../helpers/events-validator.js'
import { startFixture, type Fixture } from './replication-fixture.js'

let f: Fixture
const seen = new Set<string>()

beforeAll(async () => {
  f = await startFixture()
})
afterAll(async () => {
  await f?.close()
})

/** Runs `xen-cr --json …`; every line of both streams must be valid; returns the events of each. */
async function json(args: readonly string[], now?: Date) {
  const stdout = new CaptureStream()
  const stderr = new CaptureStream()
  const code = await run(['--config', f.lab.configPath, '--json', ...args], {
    stdout,
    stderr,
    env: {},
    cwd: f.lab.dir,
    ...(now === undefined ? {} : { now: () => now }),
  })
  const out = stdout.lines.map(validateEventLine)
  const err = stderr.lines.map(validateEventLine)
  for (const event of [...out, ...err]) seen.add(String(event['kind']))
  expect(out.filter(event => event['kind'] === 'error')).toEqual([])
  expect(err.map(event => event['kind'])).toEqual(err.map(() => 'error'))
  return { code, out, err }
}

describe('--json output against the schema', () => {
  it('validates every line of a job from creation through passes, listings and edits', async () => {
    const created = await json([
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
      '1',
      '--disabled',
    ])
    expect(created.code).toBe(0)
    expect((await json(['run', 'nightly', '--dry-run'])).code).toBe(0)

    const start = Date.now()
    const full = await json(['run', 'nightly'], new Date(start))
    expect(full.code).toBe(0)
    expect(full.out.map(event => event['kind'])).toEqual(
      expect.arrayContaining(['pass-start', 'vm-start', 'disk-progress', 'vm-done', 'pass-done']),
    )
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [1], seed: 5 })
    const later = new Date(start + 3_600_000)
    expect((await json(['run', 'nightly'], later)).code).toBe(0)
    // a dry run that would delete the previous replica and snapshot
    expect((await json(['run', 'nightly', '--dry-run'], later)).code).toBe(0)

    f.lab.control.injectFault('src', {
      kind: 'error',
      method: 'VM.snapshot',
      code: 'SR_BACKEND_FAILURE_44',
      params: [],
    })
    const failed = await json(['run', 'nightly'], new Date(start + 2 * 3_600_000))
    expect(failed.code).toBe(1)
    f.lab.control.clearFaults()

    for (const args of [
      ['list'],
      ['list', 'nightly', '--check', '--include-disabled'],
      ['--verbose', 'list', '--check', '--include-disabled'],
      ['job', 'list'],
      ['job', 'show', 'nightly'],
      ['job', 'edit', 'nightly', '--retention', '2', '--enabled'],
      ['job', 'edit', 'nightly', '--retention', '2'],
      ['vms', 'src'],
      ['srs', 'tgt'],
      ['networks', 'tgt'],
      ['config', 'show'],
      ['replicas', 'nightly'],
    ]) {
      const result = await json(args, later)
      expect({ args, code: result.code, err: result.err }).toEqual({ args, code: 0, err: [] })
      expect(result.out.length).toBeGreaterThan(0)
    }
    expect([...seen]).toEqual(
      expect.arrayContaining(['job-created', 'pass-plan', 'replica-list', 'rpo-check', 'job-edited', 'vm-inventory']),
    )
  })

  it('puts each error alone on stderr as one JSON line, for ours and for a refused command line', async () => {
    const unknownJob = await json(['run', 'monthly'])
    expect(unknownJob.code).toBe(2)
    expect(unknownJob.out).toEqual([])
    expect(unknownJob.err).toMatchObject([{ kind: 'error', code: 'JOB_NOT_FOUND', exitCode: 2, schemaVersion: 1 }])

    const badFlag = await json(['list', '--bogus'])
    expect(badFlag.code).toBe(2)
    expect(badFlag.out).toEqual([])
    expect(badFlag.err).toMatchObject([{ kind: 'error', code: 'USAGE', exitCode: 2 }])
    expect(String(badFlag.err[0]?.['message'])).toMatch(/unknown option '--bogus'/)

    const unreachable = await json(['vms', 'nowhere'])
    expect(unreachable.err).toMatchObject([{ kind: 'error', code: 'POOL_NOT_CONFIGURED' }])
  })
})
