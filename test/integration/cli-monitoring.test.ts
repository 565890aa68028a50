/**
 * Monitoring through the real CLI against the lab: `list --check` as a probe (one line per VM out
 * of its RPO and nothing else, disabled jobs skipped unless asked, --max-age/--tolerance, exit 0 /
 * 1 / 4), and the `--metrics-file` of `run` and `list` read back with a strict Prometheus text
 * parser and checked against what the pass reported and what the pools hold.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import { JobStore } from '../../src/jobs/job-store.js'
import { parseXapiDateTime } from '../../src/replication/metadata.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js'
import { makeTempDir } from '../helpers/tmp.js'
import { makeJob, startFixture, type Fixture } from './replication-fixture.js'

const HOUR = 3_600_000

let f: Fixture
let tmp: { path: string; remove: () => Promise<void> }
let config: string
let jobsFile: string

/** A port on loopback that nobody listens on. */
async function deadPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>(resolve => server.close(() => resolve()))
  return port
}

beforeAll(async () => {
  f = await startFixture()
  tmp = await makeTempDir('xen-cr-monitoring-')
  // the lab's pools plus one that cannot be reached, for "cannot tell"
  const labConfig = JSON.parse(await readFile(f.lab.configPath, 'utf8')) as {
    pools: Record<string, { url: string; passwordFile: string }>
  }
  for (const pool of Object.values(labConfig.pools)) pool.passwordFile = join(f.lab.dir, pool.passwordFile)
  labConfig.pools['gone'] = { ...labConfig.pools['tgt']!, url: `http://127.0.0.1:${await deadPort()}` }
  config = join(tmp.path, 'xen-cr.config.json')
  await writeFile(config, JSON.stringify(labConfig))
  jobsFile = join(tmp.path, 'jobs.json')
  await new JobStore(jobsFile).add(makeJob(f))
})
afterAll(async () => {
  await f?.close()
  await tmp?.remove()
})

async function cli(args: readonly string[], now?: Date) {
  const stdout = new CaptureStream()
  const stderr = new CaptureStream()
  const code = await run(['--config', config, '--jobs-file', jobsFile, ...args], {
    stdout,
    stderr,
    env: {},
    cwd: tmp.path,
    ...(now === undefined ? {} : { now: () => now }),
  })
  return { code, out: stdout.text, err: stderr.text, lines: stdout.lines }
}

async function metrics(file: string) {
  return parsePrometheusText(await readFile(join(tmp.path, file), 'utf8'))
}

describe('list --check and --metrics-file', () => {
  let passedAt: Date
  let replicaDate: Date
  let bytes: number

  it('says "never" for a VM without a replica and exits 1', async () => {
    const never = await cli(['list', '--check'])
    expect(never.code).toBe(1)
    expect(never.lines).toEqual([`never job "nightly" VM web (${f.vmUuid}): no complete replica yet`])
  })

  it('run --metrics-file records the pass as the pass reported it', async () => {
    passedAt = new Date()
    const first = await cli(['--json', 'run', 'nightly', '--metrics-file', 'run.prom'], passedAt)
    expect(first.code).toBe(0)
    const done = first.lines
      .map(line => JSON.parse(line) as { kind: string; result?: { bytes: number; durationMs: number } })
      .find(event => event.kind === 'vm-done')
    bytes = done?.result?.bytes ?? 0
    expect(bytes).toBeGreaterThan(0)
    const families = await metrics('run.prom')
    const web = { job_name: 'nightly', vm: 'web', vm_uuid: f.vmUuid }
    expect(sampleValue(families, 'xen_cr_pass_success', web)).toBe(1)
    expect(sampleValue(families, 'xen_cr_pass_full', web)).toBe(1)
    expect(sampleValue(families, 'xen_cr_pass_bytes', web)).toBe(bytes)
    expect(sampleValue(families, 'xen_cr_pass_duration_seconds', web)).toBe((done?.result?.durationMs ?? 0) / 1000)
    expect(sampleValue(families, 'xen_cr_pass_timestamp_seconds', web)).toBe(passedAt.getTime() / 1000)
    expect(sampleValue(families, 'xen_cr_last_success_timestamp_seconds', web)).toBe(passedAt.getTime() / 1000)
    expect(sampleValue(families, 'xen_cr_job_run_success', { job_name: 'nightly' })).toBe(1)

    const listed = JSON.parse((await cli(['--json', 'list'], passedAt)).lines[0] ?? '{}') as {
      listings: { vms: { replicas: { datetime: string }[] }[] }[]
    }
    replicaDate = parseXapiDateTime(listed.listings[0]?.vms[0]?.replicas[0]?.datetime)!
    expect(replicaDate).toBeInstanceOf(Date)
  })

  it('prints nothing and exits 0 while the replica is within the RPO plus the default tolerance', async () => {
    // 1h RPO + 5m tolerance
    const atLimit = new Date(replicaDate.getTime() + HOUR + 5 * 60_000)
    const ok = await cli(['list', '--check'], atLimit)
    expect({ code: ok.code, out: ok.out, err: ok.err }).toEqual({ code: 0, out: '', err: '' })
    const verbose = await cli(['--verbose', 'list', '--check'], atLimit)
    expect(verbose.code).toBe(0)
    expect(verbose.out).toMatch(/job "nightly"/)
    expect(verbose.out).toMatch(/checked 1 VM of 1 job/)
  })

  it('says "late" one second past the limit, and --max-age / --tolerance move the limit', async () => {
    const past = new Date(replicaDate.getTime() + HOUR + 5 * 60_000 + 1000)
    const late = await cli(['list', '--check'], past)
    expect(late.code).toBe(1)
    expect(late.lines).toHaveLength(1)
    expect(late.lines[0]).toMatch(
      new RegExp(
        `^late job "nightly" VM web \\(${f.vmUuid}\\): 1h05m01s old, limit 1h05m = RPO 1h \\+ tolerance 5m; newest replica web - nightly - \\(\\d{8}T\\d{6}Z\\) \\([0-9a-f-]{36}\\) of \\d{8}T\\d\\d:\\d\\d:\\d\\dZ on SR Replica A$`,
      ),
    )
    expect((await cli(['list', '--check', '--max-age', '2h'], past)).code).toBe(0)
    expect((await cli(['list', '--check', '--tolerance', '10m'], past)).code).toBe(0)
    const strict = await cli(['list', '--check', '--max-age', '30m', '--tolerance', '0'], past)
    expect(strict.code).toBe(1)
    expect(strict.lines[0]).toMatch(/limit 30m = max age 30m \+ tolerance 0s/)
    const bad = await cli(['list', '--check', '--max-age', 'soon'], past)
    expect(bad.code).toBe(2)
    expect(bad.err).toMatch(/--max-age must be a duration.*\[INVALID_OPTION\]/)
  })

  it('list --metrics-file gives the replica age and timestamp the pools hold, the RPO and the verdict', async () => {
    const later = new Date(replicaDate.getTime() + 2 * HOUR)
    const listed = await cli(['list', '--metrics-file', 'list.prom'], later)
    expect(listed.code).toBe(0)
    const families = await metrics('list.prom')
    const web = { job_name: 'nightly', vm_uuid: f.vmUuid }
    expect(sampleValue(families, 'xen_cr_replica_age_seconds', web)).toBe(2 * 3600)
    expect(sampleValue(families, 'xen_cr_replica_timestamp_seconds', web)).toBe(replicaDate.getTime() / 1000)
    expect(sampleValue(families, 'xen_cr_replicas', web)).toBe(1)
    expect(sampleValue(families, 'xen_cr_rpo_ok', web)).toBe(0)
    expect(sampleValue(families, 'xen_cr_rpo_seconds', { job_name: 'nightly' })).toBe(3600)
    expect(sampleValue(families, 'xen_cr_rpo_limit_seconds', { job_name: 'nightly' })).toBe(3900)
    expect(sampleValue(families, 'xen_cr_job_enabled', { job_name: 'nightly' })).toBe(1)
    expect(sampleValue(families, 'xen_cr_job_listed', { job_name: 'nightly' })).toBe(1)
    expect(sampleValue(families, 'xen_cr_list_timestamp_seconds')).toBe(later.getTime() / 1000)
  })

  it('skips a disabled job unless --include-disabled', async () => {
    const later = new Date(replicaDate.getTime() + 2 * HOUR)
    expect((await cli(['job', 'disable', 'nightly'])).code).toBe(0)
    try {
      const skipped = await cli(['list', '--check'], later)
      expect({ code: skipped.code, out: skipped.out }).toEqual({ code: 0, out: '' })
      const included = await cli(['list', '--check', '--include-disabled'], later)
      expect(included.code).toBe(1)
      expect(included.lines).toHaveLength(1)
      expect(included.lines[0]).toMatch(/^late job "nightly" VM web/)
    } finally {
      await cli(['job', 'enable', 'nightly'])
    }
  })

  it('says "unknown" and exits 4 for a job whose target cannot be reached; a breach elsewhere wins with 1', async () => {
    const store = new JobStore(jobsFile)
    await store.add(
      makeJob(f, {
        id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0901',
        name: 'remote',
        target: 'gone',
        schedules: [
          {
            id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0902',
            timing: { kind: 'interval', interval: '1h', intervalMs: HOUR },
            retention: 1,
          },
        ],
      }),
    )
    try {
      const fresh = new Date(replicaDate.getTime() + 60_000)
      const unknown = await cli(['list', '--check'], fresh)
      expect(unknown.code).toBe(4)
      expect(unknown.lines).toHaveLength(1)
      expect(unknown.lines[0]).toMatch(/^unknown job "remote": cannot tell, .*\[POOL_UNREACHABLE\]$/)
      const late = await cli(['list', '--check'], new Date(replicaDate.getTime() + 2 * HOUR))
      expect(late.code).toBe(1)
      expect(late.lines.map(line => line.split(' ')[0])).toEqual(['unknown', 'late'])

      // plain list: the other jobs are still listed, the unreachable one is an error line
      const listed = await cli(['list', '--metrics-file', 'list.prom'], fresh)
      expect(listed.code).toBe(4)
      expect(listed.out).toMatch(/job "nightly"/)
      expect(listed.err).toMatch(/error job "remote": .*\[POOL_UNREACHABLE\]/)
      const families = await metrics('list.prom')
      expect(sampleValue(families, 'xen_cr_job_listed', { job_name: 'remote' })).toBe(0)
      expect(sampleValue(families, 'xen_cr_job_listed', { job_name: 'nightly' })).toBe(1)

      // run --due: nightly is not due, remote cannot be reached; nightly's last pass is carried over
      const due = await cli(['run', '--due', '--metrics-file', 'run.prom'], fresh)
      expect(due.code).toBe(4)
      const runFamilies = await metrics('run.prom')
      expect(sampleValue(runFamilies, 'xen_cr_job_run_success', { job_name: 'remote' })).toBe(0)
      expect(sampleValue(runFamilies, 'xen_cr_job_run_success', { job_name: 'nightly' })).toBe(1)
      expect(sampleValue(runFamilies, 'xen_cr_pass_bytes', { job_name: 'nightly', vm: 'web' })).toBe(bytes)
      expect(sampleValue(runFamilies, 'xen_cr_run_timestamp_seconds')).toBe(fresh.getTime() / 1000)
    } finally {
      await store.remove('remote')
    }
    // a job gone from the store leaves the metrics
    await cli(['run', '--due', '--metrics-file', 'run.prom'], new Date(replicaDate.getTime() + 60_000))
    expect((await metrics('run.prom')).get('xen_cr_job_run_success')?.samples.map(s => s.labels['job_name'])).toEqual([
      'nightly',
    ])
  })
})
