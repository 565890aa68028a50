/**
 * `xen-cr job edit` against the lab: a change is checked against the pools as `job create`
 * checks a new job and saved atomically; every refusal exits with its code and leaves the job
 * store's bytes as they were.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import { JobStore } from '../../src/jobs/job-store.js'
import type { Lab } from '../../src/lab/start.js'
import type { LabSpec } from '../../src/lab/spec.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'
import { makeTempDir } from '../helpers/tmp.js'

const SPEC: LabSpec = {
  pools: [
    {
      name: 'src',
      srs: [{ name: 'Local storage', size: '1 GiB' }],
      networks: [{ name: 'LAN' }],
      vms: [
        { name: 'web', tags: ['web'], disks: [{ size: '4 MiB' }] },
        { name: 'db', disks: [{ size: '4 MiB' }] },
      ],
    },
    {
      name: 'tgt',
      srs: [
        { name: 'Replica A', size: '1 GiB' },
        { name: 'Replica B', size: '1 GiB' },
      ],
      defaultSr: 'Replica B',
      networks: [{ name: 'LAN' }],
    },
    { name: 'dr', srs: [{ name: 'DR storage', size: '1 GiB' }] },
  ],
}

const UNKNOWN = '00000000-0000-4000-8000-00000000dead'

let lab: Lab
let tmp: { path: string; remove: () => Promise<void> }
const ids = { web: '', db: '', srA: '', srB: '', dr: '', srcNet: '', tgtNet: '' }

beforeAll(async () => {
  lab = await startTempLab(SPEC)
  tmp = await makeTempDir('xen-cr-job-edit-')
  const clients = await Promise.all(['src', 'tgt', 'dr'].map(name => connectLabPool(labPool(lab, name))))
  const [source, target, dr] = clients as [(typeof clients)[0], (typeof clients)[0], (typeof clients)[0]]
  try {
    const vms = [...(await source.getAllRecords('VM')).values()]
    ids.web = vms.find(vm => vm.name_label === 'web')!.uuid
    ids.db = vms.find(vm => vm.name_label === 'db')!.uuid
    const srs = [...(await target.getAllRecords('SR')).values()]
    ids.srA = srs.find(sr => sr.name_label === 'Replica A')!.uuid
    ids.srB = srs.find(sr => sr.name_label === 'Replica B')!.uuid
    ids.dr = [...(await dr.getAllRecords('SR')).values()].find(sr => sr.name_label === 'DR storage')!.uuid
    ids.srcNet = [...(await source.getAllRecords('network')).values()].find(n => n.name_label === 'LAN')!.uuid
    ids.tgtNet = [...(await target.getAllRecords('network')).values()].find(n => n.name_label === 'LAN')!.uuid
  } finally {
    await Promise.all(clients.map(client => client.close()))
  }
})
afterAll(async () => {
  await lab?.stop()
  await tmp?.remove()
})

let jobsFile: string
beforeEach(async ({ task }) => {
  jobsFile = join(tmp.path, `${task.id}.jobs.json`)
  const created = await cli([
    'job',
    'create',
    '--name',
    'nightly',
    '--source',
    'src',
    '--target',
    'tgt',
    '--sr',
    ids.srA,
    '--vm',
    ids.web,
    '--interval',
    '1h',
    '--retention',
    '2',
  ])
  expect(created.code).toBe(0)
  await new JobStore(jobsFile).add({ ...(await new JobStore(jobsFile).get('nightly')), id: UNKNOWN, name: 'weekly' })
})

async function cli(args: readonly string[]) {
  const stdout = new CaptureStream()
  const stderr = new CaptureStream()
  const code = await run(['--config', lab.configPath, '--jobs-file', jobsFile, ...args], {
    stdout,
    stderr,
    env: {},
    cwd: tmp.path,
  })
  return { code, lines: stdout.lines, err: stderr.text }
}

/** Runs `job edit nightly …`, expects exit `code` with `errorCode`, and that the store's bytes did not change. */
async function refused(args: readonly string[], code: number, errorCode: string): Promise<void> {
  const before = await readFile(jobsFile, 'utf8')
  const result = await cli(['job', 'edit', 'nightly', ...args])
  expect({ code: result.code, err: result.err }).toMatchObject({
    code,
    err: expect.stringContaining(`[${errorCode}]`) as unknown,
  })
  expect(await readFile(jobsFile, 'utf8')).toBe(before)
}

describe('job edit', () => {
  it('changes what it is given, keeps the rest and the ids, and says what changed', async () => {
    const before = await new JobStore(jobsFile).get('nightly')
    const edited = await cli([
      'job',
      'edit',
      'nightly',
      '--retention',
      '3',
      '--cron',
      '0 */6 * * *',
      '--tag',
      'web',
      '--sr',
      ids.srA,
      ids.srB,
      '--network-map',
      `${ids.srcNet}=${ids.tgtNet}`,
      '--max-rate',
      '20M',
      '--disabled',
    ])
    expect(edited.err).toBe('')
    expect(edited.code).toBe(0)
    const after = await new JobStore(jobsFile).get(before.id)
    expect(after).toEqual({
      ...before,
      enabled: false,
      vms: { uuids: [], tags: ['web'], all: false },
      srs: [ids.srA, ids.srB],
      schedules: [{ id: before.schedules[0]!.id, timing: { kind: 'cron', cron: '0 */6 * * *' }, retention: 3 }],
      networkMap: { [ids.srcNet]: ids.tgtNet },
      maxRate: 20 * 1024 * 1024,
    })
    expect(edited.lines).toEqual([
      `job "nightly" (${before.id}) saved:`,
      '  enabled: yes -> no',
      `  vms: VMs ${ids.web} -> tags web`,
      `  srs: ${ids.srA} -> ${ids.srA}, ${ids.srB}`,
      '  schedules: every 1h, retention 2 -> cron "0 */6 * * *", retention 3',
      `  networkMap: none -> ${ids.srcNet}=${ids.tgtNet}`,
      '  maxRate: unlimited -> 20 MiB/s',
      expect.stringMatching(/^crontab: 0 \*\/6 \* \* \* .* run --due$/) as unknown as string,
    ])
    // and back, through --json
    const back = await cli([
      '--json',
      'job',
      'edit',
      before.id,
      '--enabled',
      '--max-rate',
      'none',
      '--network-map',
      'none',
    ])
    expect(back.code).toBe(0)
    const event = JSON.parse(back.lines[0]!) as {
      kind: string
      changes: { setting: string }[]
      job: { enabled: boolean }
    }
    expect(event.kind).toBe('job-edited')
    expect(event.changes.map(c => c.setting)).toEqual(['enabled', 'networkMap', 'maxRate'])
    expect(await new JobStore(jobsFile).get(before.id)).not.toHaveProperty('maxRate')
  })

  it("renames, and moves to another target on that target's default SR", async () => {
    const before = await new JobStore(jobsFile).get('nightly')
    expect((await cli(['job', 'edit', 'nightly', '--name', 'hourly'])).code).toBe(0)
    expect((await cli(['job', 'edit', 'hourly', '--target', 'dr'])).code).toBe(0)
    expect(await new JobStore(jobsFile).get('hourly')).toEqual({
      ...before,
      name: 'hourly',
      target: 'dr',
      srs: [ids.dr],
    })
    const same = await cli(['job', 'edit', 'hourly', '--target', 'dr'])
    expect(same.lines).toEqual([`job "hourly" (${before.id}): nothing changed`])
  })

  it('refuses, writing nothing, what job create refuses (exit 2 for a flag, 5 for the pools)', async () => {
    await refused([], 2, 'MISSING_OPTION')
    await refused(['--retention', '0'], 2, 'INVALID_OPTION')
    await refused(['--interval', '1h', '--cron', '0 * * * *'], 2, 'CONFLICTING_OPTIONS')
    await refused(['--enabled', '--disabled'], 2, 'CONFLICTING_OPTIONS')
    await refused(['--source', 'nowhere'], 2, 'POOL_NOT_CONFIGURED')
    await refused(['--vm', UNKNOWN], 5, 'VM_NOT_FOUND')
    await refused(['--sr', UNKNOWN], 5, 'SR_NOT_FOUND')
    await refused(['--network-map', `${UNKNOWN}=${ids.tgtNet}`], 5, 'NETWORK_NOT_FOUND')
    await refused(['--name', 'weekly'], 5, 'JOB_EXISTS')
    const unknown = await cli(['job', 'edit', 'monthly', '--retention', '3'])
    expect(unknown.code).toBe(2)
    expect(unknown.err).toMatch(/\[JOB_NOT_FOUND\]/)
  })

  it('has no --id or --schedule-id: replicas are keyed by them', async () => {
    const result = await cli(['job', 'edit', 'nightly', '--id', UNKNOWN])
    expect(result.code).toBe(2)
    expect(result.err).toMatch(/unknown option '--id'/)
  })
})
