/**
 * `xen-cr job …` driven in-process through run(argv) against a real lab over loopback: the
 * config the lab writes is used as is, and every refusal of `job create` is checked to exit
 * with its code and to leave the job store untouched.
 */
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import type { Lab } from '../../src/lab/start.js'
import type { LabSpec } from '../../src/lab/spec.js'
import { snapshotVm } from '../../src/xapi/vm.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'
import { makeTempDir } from '../helpers/tmp.js'

const SPEC: LabSpec = {
  pools: [
    {
      name: 'src',
      srs: [{ name: 'Local storage', size: '1 GiB' }],
      networks: [{ name: 'Pool-wide network associated with eth0' }],
      vms: [
        {
          name: 'web',
          tags: ['web'],
          disks: [{ size: '4 MiB' }],
          networks: ['Pool-wide network associated with eth0'],
        },
        { name: 'db', disks: [{ size: '4 MiB' }] },
      ],
    },
    {
      name: 'tgt',
      srs: [
        { name: 'Replica A', size: '1 GiB' },
        { name: 'Replica B', size: '1 GiB' },
      ],
      networks: [{ name: 'Pool-wide network associated with eth0' }],
    },
    { name: 'bare' },
  ],
}

const UNKNOWN = '00000000-0000-4000-8000-00000000dead'

let lab: Lab
const ids = { web: '', db: '', snapshot: '', srA: '', srB: '', srcNet: '', tgtNet: '' }

beforeAll(async () => {
  lab = await startTempLab(SPEC)
  const source = await connectLabPool(labPool(lab, 'src'))
  const target = await connectLabPool(labPool(lab, 'tgt'))
  try {
    const vms = [...(await source.getAllRecords('VM'))]
    const web = vms.find(([, vm]) => vm.name_label === 'web')!
    ids.web = web[1].uuid
    ids.db = vms.find(([, vm]) => vm.name_label === 'db')![1].uuid
    const snapshot = await snapshotVm(source, web[0], 'web snapshot')
    ids.snapshot = (await source.getRecord('VM', snapshot)).uuid
    const srs = [...(await target.getAllRecords('SR')).values()]
    ids.srA = srs.find(sr => sr.name_label === 'Replica A')!.uuid
    ids.srB = srs.find(sr => sr.name_label === 'Replica B')!.uuid
    ids.srcNet = [...(await source.getAllRecords('network')).values()][0]!.uuid
    ids.tgtNet = [...(await target.getAllRecords('network')).values()][0]!.uuid
  } finally {
    await source.close()
    await target.close()
  }
})

afterAll(async () => {
  await lab?.stop()
})

let tmp: { path: string; remove: () => Promise<void> }
let jobsFile: string
beforeEach(async () => {
  tmp = await makeTempDir()
  jobsFile = join(tmp.path, 'jobs.json')
})
afterEach(async () => {
  await tmp.remove()
})

async function cli(args: string[], options: { config?: string } = {}) {
  const stdout = new CaptureStream()
  const stderr = new CaptureStream()
  const code = await run(['--config', options.config ?? lab.configPath, '--jobs-file', jobsFile, ...args], {
    stdout,
    stderr,
    env: { HOME: tmp.path, XDG_CONFIG_HOME: join(tmp.path, 'xdg') },
    cwd: tmp.path,
  })
  return { code, stdout, stderr }
}

const create = (...extra: string[]) => [
  'job',
  'create',
  '--name',
  'nightly',
  '--source',
  'src',
  '--target',
  'tgt',
  ...extra,
]

async function storeExists(): Promise<boolean> {
  return stat(jobsFile).then(
    () => true,
    () => false,
  )
}

describe('xen-cr job create against the lab', () => {
  it('saves a checked job, prints its ids and crontab line, defaults the SR to the target default', async () => {
    const { code, stdout, stderr } = await cli(create('--vm', ids.web, '--interval', '1h', '--retention', '3'))
    expect(stderr.text).toBe('')
    expect(code).toBe(0)
    const store = JSON.parse(await readFile(jobsFile, 'utf8')) as {
      jobs: { id: string; srs: string[]; schedules: { id: string; retention: number }[] }[]
    }
    const saved = store.jobs[0]!
    expect(saved.srs).toEqual([ids.srA])
    expect(saved.schedules[0]!.retention).toBe(3)
    expect(stdout.lines[0]).toBe(`job id: ${saved.id}`)
    expect(stdout.lines[1]).toBe(`schedule id: ${saved.schedules[0]!.id}`)
    const crontab = stdout.lines.find(line => line.startsWith('crontab: '))!
    expect(crontab).toMatch(/^crontab: \*\/15 \* \* \* \* \S+ \S+xen-cr\.js --config \S+ --jobs-file \S+ run --due$/)
    expect(crontab).toContain(`--config ${lab.configPath}`)
    expect(crontab).toContain(`--jobs-file ${jobsFile}`)

    const show = await cli(['job', 'show', 'nightly'])
    expect(show.code).toBe(0)
    expect(show.stdout.lines.slice(0, 2)).toEqual(stdout.lines.slice(0, 2))
  })

  it('adopts --id and --schedule-id, takes every flag, and answers --json with one job-created event', async () => {
    const jobId = '4a8a5d43-2c9b-4f61-9c1e-2b7c0e6a0001'
    const scheduleId = '4a8a5d43-2c9b-4f61-9c1e-2b7c0e6a0002'
    const { code, stdout } = await cli([
      '--json',
      ...create(
        '--vm',
        ids.web,
        ids.db,
        '--sr',
        ids.srA,
        '--sr',
        ids.srB,
        '--cron',
        '0 */6 * * *',
        '--id',
        jobId,
        '--schedule-id',
        scheduleId,
      ),
      ...[
        '--concurrency',
        '1',
        '--full-interval',
        '20',
        '--network-map',
        `${ids.srcNet}=${ids.tgtNet}`,
        '--max-rate',
        '50M',
        '--disabled',
      ],
    ])
    expect(code).toBe(0)
    const events = stdout.lines.map(
      line => JSON.parse(line) as { kind: string; job?: Record<string, unknown>; crontab?: string },
    )
    const created = events.find(event => event.kind === 'job-created')!
    expect(created.job).toMatchObject({
      id: jobId,
      enabled: false,
      vms: { uuids: [ids.web, ids.db], tags: [], all: false },
      srs: [ids.srA, ids.srB],
      schedules: [{ id: scheduleId, timing: { kind: 'cron', cron: '0 */6 * * *' }, retention: 1 }],
      concurrency: 1,
      fullInterval: 20,
      networkMap: { [ids.srcNet]: ids.tgtNet },
      maxRate: 50 * 1024 * 1024,
    })
    expect(created.crontab).toMatch(/^0 \*\/6 \* \* \* .* run --due$/)
  })

  it('warns about a tag no VM has yet but saves the job', async () => {
    const { code, stderr } = await cli(create('--tag', 'web', '--tag', 'nobody-has-this', '--interval', '24h'))
    expect(code).toBe(0)
    expect(stderr.text).toContain('TAG_MATCHES_NO_VM')
    expect(stderr.text).toContain('nobody-has-this')
    expect(await storeExists()).toBe(true)
  })

  it.each([
    ['an unknown VM', () => ['--vm', UNKNOWN], 'VM_NOT_FOUND'],
    ['a snapshot given as VM', () => ['--vm', ids.snapshot], 'VM_NOT_REPLICABLE'],
    ['an SR of the source pool', () => ['--vm', ids.web, '--sr', UNKNOWN], 'SR_NOT_FOUND'],
    [
      'an unknown source network',
      () => ['--vm', ids.web, '--network-map', `${UNKNOWN}=${ids.tgtNet}`],
      'NETWORK_NOT_FOUND',
    ],
    [
      'an unknown target network',
      () => ['--vm', ids.web, '--network-map', `${ids.srcNet}=${UNKNOWN}`],
      'NETWORK_NOT_FOUND',
    ],
  ])('refuses %s with exit 5 and saves nothing', async (_label, extra, errorCode) => {
    const { code, stderr, stdout } = await cli(create(...extra(), '--interval', '1h'))
    expect(code).toBe(5)
    expect(stderr.lines).toHaveLength(1)
    expect(stderr.text).toContain(`[${errorCode}]`)
    expect(stdout.text).toBe('')
    expect(await storeExists()).toBe(false)
  })

  it('refuses a target pool without a default SR when no --sr is given', async () => {
    const { code, stderr } = await cli([
      'job',
      'create',
      '--name',
      'n',
      '--source',
      'src',
      '--target',
      'bare',
      '--vm',
      ids.web,
      '--interval',
      '1h',
    ])
    expect(code).toBe(5)
    expect(stderr.text).toContain('[NO_DEFAULT_SR]')
    expect(await storeExists()).toBe(false)
  })

  it('refuses a second job with the same name with exit 5, leaving the store as it was', async () => {
    expect((await cli(create('--vm', ids.web, '--interval', '1h'))).code).toBe(0)
    const before = await readFile(jobsFile, 'utf8')
    const again = await cli(create('--vm', ids.db, '--interval', '1h'))
    expect(again.code).toBe(5)
    expect(again.stderr.text).toContain('[JOB_EXISTS]')
    expect(await readFile(jobsFile, 'utf8')).toBe(before)
  })

  it('exits 2 for an unknown pool and for a missing schedule, before any login', async () => {
    const pool = await cli([
      'job',
      'create',
      '--name',
      'n',
      '--source',
      'nowhere',
      '--target',
      'tgt',
      '--vm',
      ids.web,
      '--interval',
      '1h',
    ])
    expect(pool.code).toBe(2)
    expect(pool.stderr.text).toContain('[POOL_NOT_CONFIGURED]')
    expect(pool.stderr.text).toContain(lab.configPath)
    const schedule = await cli(create('--vm', ids.web))
    expect(schedule.code).toBe(2)
    expect(schedule.stderr.text).toContain('[MISSING_OPTION]')
    expect(await storeExists()).toBe(false)
  })

  it('exits 4 when a pool refuses the password or cannot be reached, never printing the password', async () => {
    const srcInfo = lab.pools.find(pool => pool.name === 'src')!
    await writeFile(join(tmp.path, 'wrong.password'), 'not-the-password\n', { mode: 0o600 })
    const config = join(tmp.path, 'xen-cr.config.json')
    await writeFile(
      config,
      JSON.stringify({
        pools: {
          src: { url: srcInfo.url, user: 'root', passwordFile: 'wrong.password' },
          // port 1 on loopback: nothing listens there
          gone: { url: 'http://127.0.0.1:1', user: 'root', passwordFile: 'wrong.password' },
        },
      }),
    )
    const auth = await cli(
      ['job', 'create', '--name', 'n', '--source', 'src', '--target', 'src', '--vm', ids.web, '--interval', '1h'],
      { config },
    )
    expect(auth.code).toBe(4)
    expect(auth.stderr.text).toContain('[POOL_AUTH_FAILED]')
    expect(auth.stderr.text).not.toContain('not-the-password')
    const gone = await cli(
      ['job', 'create', '--name', 'n', '--source', 'gone', '--target', 'gone', '--vm', ids.web, '--interval', '1h'],
      { config },
    )
    expect(gone.code).toBe(4)
    expect(gone.stderr.text).toContain('[POOL_UNREACHABLE]')
    expect(await storeExists()).toBe(false)
  })
})

describe('xen-cr job list | show | enable | disable | delete', () => {
  it('manages a job through its life', async () => {
    expect((await cli(create('--vm', ids.web, '--interval', '1h'))).code).toBe(0)
    const list = await cli(['--json', 'job', 'list'])
    const listed = JSON.parse(list.stdout.lines[0]!) as {
      kind: string
      jobs: { id: string; name: string; enabled: boolean }[]
    }
    expect(listed).toMatchObject({ kind: 'job-list', jobs: [{ name: 'nightly', enabled: true }] })
    const id = listed.jobs[0]!.id

    const disabled = await cli(['job', 'disable', 'nightly'])
    expect(disabled.code).toBe(0)
    expect(disabled.stdout.text).toBe(`disabled job ${id} (nightly)\n`)
    const shown = await cli(['--json', 'job', 'show', id])
    expect(JSON.parse(shown.stdout.lines[0]!)).toMatchObject({ kind: 'job-show', job: { id, enabled: false } })
    expect((await cli(['job', 'enable', id])).stdout.text).toBe(`enabled job ${id} (nightly)\n`)

    const table = await cli(['job', 'list'])
    expect(table.stdout.lines[0]).toMatch(/^ID\s+NAME\s+ENABLED\s+SOURCE\s+TARGET\s+SCHEDULES$/)
    expect(table.stdout.lines[1]).toContain(id)
    expect(table.stdout.lines[1]).toContain('every 1h keep 1')

    const deleted = await cli(['job', 'delete', 'nightly'])
    expect(deleted.code).toBe(0)
    expect(JSON.parse(await readFile(jobsFile, 'utf8'))).toEqual({ version: 1, jobs: [] })
    const missing = await cli(['job', 'delete', 'nightly'])
    expect(missing.code).toBe(2)
    expect(missing.stderr.text).toContain('[JOB_NOT_FOUND]')
  })
})
