import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parsePrometheusText, sampleValue } from '../../../test/helpers/prometheus-text.js'
import { makeTempDir } from '../../../test/helpers/tmp.js'
import { UsageError } from '../../errors.js'
import type { VmResult } from '../../replication/events.js'
import type { JobListing, ReplicaEntry } from '../../replication/list.js'
import { listMetricsText } from './list-metrics.js'
import { readMetricsSamples, writeMetricsFile } from './metrics-file.js'
import { runMetricsText, type JobRun } from './run-metrics.js'

const NOW = new Date('2026-03-01T12:00:00.000Z')
const NOW_S = NOW.getTime() / 1000
const HOUR = 3_600_000

let tmp: { path: string; remove: () => Promise<void> }
beforeEach(async () => {
  tmp = await makeTempDir('xen-cr-metrics-')
})
afterEach(async () => {
  await tmp.remove()
})

function replica(uuid: string, ageMs: number): ReplicaEntry {
  return {
    uuid,
    name: `web - nightly - (${uuid})`,
    srUuid: 'sr-1',
    srName: 'Replica A',
    scheduleId: 'sch-1',
    datetime: '20260301T11:00:00Z',
    ageMs,
    chain: 'delta',
    complete: true,
  }
}

const listing: JobListing = {
  job: { id: 'job-1', name: 'nightly', enabled: true },
  rpoMs: HOUR,
  vms: [
    {
      vm: { uuid: 'vm-a', name: 'web "front"' },
      replicas: [replica('r1', HOUR), replica('r2', 2 * HOUR)],
      ageMs: HOUR,
      status: 'ok',
    },
    { vm: { uuid: 'vm-b', name: 'db' }, replicas: [replica('r3', 3 * HOUR)], ageMs: 3 * HOUR, status: 'late' },
    { vm: { uuid: 'vm-c', name: 'new' }, replicas: [], ageMs: undefined, status: 'never' },
  ],
}

describe('list metrics', () => {
  it('gives per VM the replica age, timestamp, count and verdict, and per job the RPO, limit, state', async () => {
    const text = await listMetricsText(
      [
        { job: listing.job, listing },
        {
          job: { id: 'job-2', name: 'weekly', enabled: false },
          error: new UsageError('JOB_NOT_FOUND', 'gone'),
        },
      ],
      {},
      NOW,
    )
    const families = parsePrometheusText(text)
    const web = { job_id: 'job-1', vm_uuid: 'vm-a' }
    expect(sampleValue(families, 'xen_cr_replica_age_seconds', web)).toBe(3600)
    expect(sampleValue(families, 'xen_cr_replica_timestamp_seconds', web)).toBe(NOW_S - 3600)
    expect(sampleValue(families, 'xen_cr_replicas', web)).toBe(2)
    expect(sampleValue(families, 'xen_cr_rpo_ok', web)).toBe(1)
    expect(sampleValue(families, 'xen_cr_rpo_ok', { vm_uuid: 'vm-b' })).toBe(0)
    expect(sampleValue(families, 'xen_cr_rpo_ok', { vm_uuid: 'vm-c' })).toBe(0)
    expect(sampleValue(families, 'xen_cr_replicas', { vm_uuid: 'vm-c' })).toBe(0)
    // a VM with no replica has no age: an alert on age must not see a zero
    expect(families.get('xen_cr_replica_age_seconds')?.samples.map(s => s.labels['vm_uuid'])).toEqual(['vm-a', 'vm-b'])
    // the label value survives its quotes
    expect(families.get('xen_cr_replicas')?.samples[0]?.labels).toEqual({
      job_name: 'nightly',
      job_id: 'job-1',
      vm: 'web "front"',
      vm_uuid: 'vm-a',
    })
    expect(sampleValue(families, 'xen_cr_rpo_seconds', { job_id: 'job-1' })).toBe(3600)
    expect(sampleValue(families, 'xen_cr_rpo_limit_seconds', { job_id: 'job-1' })).toBe(3900)
    expect(sampleValue(families, 'xen_cr_job_enabled', { job_id: 'job-2' })).toBe(0)
    expect(sampleValue(families, 'xen_cr_job_listed', { job_id: 'job-1' })).toBe(1)
    expect(sampleValue(families, 'xen_cr_job_listed', { job_id: 'job-2' })).toBe(0)
    expect(families.get('xen_cr_rpo_seconds')?.samples).toHaveLength(1)
    expect(sampleValue(families, 'xen_cr_list_timestamp_seconds')).toBe(NOW_S)
    for (const family of families.values()) {
      expect(family.type).toBe('gauge')
      expect(family.help).not.toBe('')
    }
  })

  it('applies --max-age and --tolerance to the verdict and the limit', async () => {
    const families = parsePrometheusText(
      await listMetricsText([{ job: listing.job, listing }], { maxAgeMs: 4 * HOUR, toleranceMs: 0 }, NOW),
    )
    expect(sampleValue(families, 'xen_cr_rpo_ok', { vm_uuid: 'vm-b' })).toBe(1)
    expect(sampleValue(families, 'xen_cr_rpo_limit_seconds', { job_id: 'job-1' })).toBe(4 * 3600)
    expect(sampleValue(families, 'xen_cr_rpo_seconds', { job_id: 'job-1' })).toBe(3600)
  })
})

const success = (uuid: string, name: string, mode: 'full' | 'delta', bytes: number): VmResult => ({
  status: 'success',
  vm: { uuid, name },
  mode,
  bytes,
  disks: 2,
  durationMs: 2500,
  replicas: [],
})
const failure = (uuid: string, name: string): VmResult => ({
  status: 'failed',
  vm: { uuid, name },
  durationMs: 1000,
  error: { code: 'XAPI_SR_BACKEND_FAILURE_44', message: 'no space' },
})

describe('run metrics', () => {
  const jobs = new Map([
    ['job-1', 'nightly'],
    ['job-2', 'weekly'],
  ])
  const run = (job: string, results: VmResult[], at: Date, complete = true): JobRun => ({
    job: { id: job, name: jobs.get(job) ?? job },
    ok: results.every(r => r.status === 'success'),
    at,
    results: results.map(result => ({ result, endedAt: at })),
    complete,
  })

  it('records each VM of a run and carries over what a later run did not touch', async () => {
    const first = await runMetricsText(
      [],
      [
        run('job-1', [success('vm-a', 'web', 'full', 1000), success('vm-b', 'db', 'delta', 10)], NOW),
        run('job-2', [success('vm-z', 'mail', 'full', 5)], NOW),
      ],
      jobs,
      NOW,
    )
    const file = join(tmp.path, 'xen-cr-run.prom')
    await writeMetricsFile(file, first)
    const later = new Date(NOW.getTime() + HOUR)
    // job-2 was not due; vm-a of job-1 failed; vm-b is no longer in job-1
    const second = await runMetricsText(
      await readMetricsSamples(file),
      [run('job-1', [failure('vm-a', 'web')], later)],
      jobs,
      later,
    )
    const families = parsePrometheusText(second)
    const web = { job_id: 'job-1', vm_uuid: 'vm-a' }
    expect(sampleValue(families, 'xen_cr_pass_success', web)).toBe(0)
    expect(sampleValue(families, 'xen_cr_pass_timestamp_seconds', web)).toBe(NOW_S + 3600)
    expect(sampleValue(families, 'xen_cr_pass_duration_seconds', web)).toBe(1)
    expect(sampleValue(families, 'xen_cr_pass_bytes', web)).toBe(0)
    expect(sampleValue(families, 'xen_cr_last_success_timestamp_seconds', web)).toBe(NOW_S)
    expect(() => sampleValue(families, 'xen_cr_pass_full', web)).toThrow(/0 samples/)
    expect(families.get('xen_cr_pass_success')?.samples.map(s => s.labels['vm_uuid'])).toEqual(['vm-a', 'vm-z'])
    const mail = { job_id: 'job-2', vm_uuid: 'vm-z' }
    expect(sampleValue(families, 'xen_cr_pass_full', mail)).toBe(1)
    expect(sampleValue(families, 'xen_cr_pass_bytes', mail)).toBe(5)
    expect(sampleValue(families, 'xen_cr_pass_duration_seconds', mail)).toBe(2.5)
    expect(sampleValue(families, 'xen_cr_job_run_success', { job_id: 'job-1' })).toBe(0)
    expect(sampleValue(families, 'xen_cr_job_run_success', { job_id: 'job-2' })).toBe(1)
    expect(sampleValue(families, 'xen_cr_job_run_timestamp_seconds', { job_id: 'job-2' })).toBe(NOW_S)
    expect(sampleValue(families, 'xen_cr_run_timestamp_seconds')).toBe(NOW_S + 3600)
  })

  it('keeps the other VMs of a --vm run, relabels a renamed job and drops a deleted one', async () => {
    const first = await runMetricsText(
      [],
      [
        run('job-1', [success('vm-a', 'web', 'full', 1), success('vm-b', 'db', 'full', 2)], NOW),
        run('job-2', [success('vm-z', 'mail', 'full', 5)], NOW),
      ],
      jobs,
      NOW,
    )
    const file = join(tmp.path, 'm.prom')
    await writeMetricsFile(file, first)
    const renamed = new Map([['job-1', 'hourly']])
    const second = parsePrometheusText(
      await runMetricsText(
        await readMetricsSamples(file),
        [{ ...run('job-1', [success('vm-b', 'db', 'delta', 7)], NOW, false), job: { id: 'job-1', name: 'hourly' } }],
        renamed,
        NOW,
      ),
    )
    expect(second.get('xen_cr_pass_bytes')?.samples).toEqual([
      { labels: { job_name: 'hourly', job_id: 'job-1', vm: 'db', vm_uuid: 'vm-b' }, value: 7 },
      { labels: { job_name: 'hourly', job_id: 'job-1', vm: 'web', vm_uuid: 'vm-a' }, value: 1 },
    ])
  })
})

describe('examples/prometheus/xen-cr.rules.yml', () => {
  it('uses only metrics and labels that xen-cr writes', async () => {
    const rules = await readFile(new URL('../../../examples/prometheus/xen-cr.rules.yml', import.meta.url), 'utf8')
    const written = new Map<string, Set<string>>()
    const texts = [
      await listMetricsText([{ job: listing.job, listing }], {}, NOW),
      await runMetricsText(
        [],
        [
          {
            job: { id: 'j', name: 'n' },
            ok: true,
            at: NOW,
            results: [{ result: success('v', 'web', 'full', 1), endedAt: NOW }],
            complete: true,
          },
        ],
        new Map([['j', 'n']]),
        NOW,
      ),
    ]
    for (const text of texts) {
      for (const family of parsePrometheusText(text).values()) {
        written.set(family.name, new Set(family.samples.flatMap(sample => Object.keys(sample.labels))))
      }
    }
    const used = [...new Set(rules.match(/xen_cr_[a-z_]+/g))]
    expect(used.length).toBeGreaterThan(5)
    for (const name of used) expect([...written.keys()], name).toContain(name)
    const labels = new Set([...written.values()].flatMap(set => [...set]))
    for (const [, list] of rules.matchAll(/on \(([^)]*)\)/g)) {
      for (const label of list!.split(',').map(l => l.trim()))
        if (label !== 'instance') expect([...labels]).toContain(label)
    }
    for (const [, label] of rules.matchAll(/\$labels\.([a-z_]+)/g)) expect([...labels]).toContain(label)
  })
})

describe('metrics file', () => {
  it('replaces the file atomically and leaves no temporary file behind', async () => {
    const file = join(tmp.path, 'x.prom')
    await writeFile(file, 'old 1\n')
    await writeMetricsFile(file, 'a_metric{l="v"} 2\n')
    expect(await readFile(file, 'utf8')).toBe('a_metric{l="v"} 2\n')
    expect(await readdir(tmp.path)).toEqual(['x.prom'])
    expect(await readMetricsSamples(file)).toEqual([{ name: 'a_metric', labels: { l: 'v' }, value: 2 }])
  })

  it('refuses a folder that does not exist with METRICS_FILE_UNWRITABLE, and reads an absent file as empty', async () => {
    const file = join(tmp.path, 'missing', 'x.prom')
    await expect(writeMetricsFile(file, 'a 1\n')).rejects.toMatchObject({ code: 'METRICS_FILE_UNWRITABLE' })
    expect(await readMetricsSamples(file)).toEqual([])
  })
})

describe('the strict Prometheus text parser used by these tests', () => {
  it('refuses what the format does not allow', () => {
    expect(() => parsePrometheusText('a 1')).toThrow(/newline/)
    expect(() => parsePrometheusText('a{x="1"} one\n')).toThrow(/bad value/)
    expect(() => parsePrometheusText('a 1\nb 1\na 2\n')).toThrow(/split/)
    expect(() => parsePrometheusText('a{x="1"} 1\na{x="1"} 2\n')).toThrow(/duplicate/)
    expect(() => parsePrometheusText('a 1\n# TYPE a gauge\n')).toThrow(/TYPE/)
    expect(() => parsePrometheusText('a{x="1} 1\n')).toThrow(/not closed/)
    expect(() => parsePrometheusText('a{1x="1"} 1\n')).toThrow(/label name/)
    expect(parsePrometheusText('# a comment\n# TYPE a gauge\na{x="q\\"\\n"} -Inf\n').get('a')?.samples).toEqual([
      { labels: { x: 'q"\n' }, value: -Infinity },
    ])
  })
})
