/**
 * Bad input found by trying the real binary as a new user would (issue 8, item 7), and the exit
 * codes cron and systemd read (item 5). Each row would fail without its fix: before it, `config
 * check` on an empty config exited 0 having checked nothing, a read-only jobs folder was an
 * "unexpected error", an unreadable config said "fix its syntax", a directory "does not exist", a
 * disk's uuid as `--vm` "is not on the source pool", `seed export` took a VM outside the job, a
 * second lab on one `--dir` rewrote the first one's state, `run --due` with one job leased and
 * another failed exited 3, and a signal after a completed run turned its exit into 143.
 * Every refusal must be one line with its code, a documented exit code, and nothing written.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmod, mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startLab, type Lab } from '../../src/lab/start.js'
import type { XapiClient } from '../../src/xapi/client.js'
import type { Ref } from '../../src/xapi/types.js'
import { builtBinary, builtModule } from '../helpers/built.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'
import { makeTempDir } from '../helpers/tmp.js'
import { OTHER_CONTROLLER, holdVmLease } from '../helpers/vm-lease.js'

const BIN = builtBinary()
const PROCESS_ENTRY = builtModule('cli/process-entry.js')
// Permissions do not stop root, which CI runs as: the rows about them run the binary without the
// two capabilities that let root past them (util-linux's setpriv), so root meets the files' owner
// bits as anyone would. Switching to another user instead would fail wherever the checkout sits
// in a folder only root can enter.
const AS_ROOT = process.getuid?.() === 0

interface Outcome {
  code: number | null
  signal: string | null
  stdout: string
  stderr: string
}

let tmp: { path: string; remove: () => Promise<void> }
beforeEach(async () => {
  tmp = await makeTempDir('xen-cr-bad-input-')
  await chmod(tmp.path, 0o755)
})
afterEach(async () => {
  await tmp.remove()
})

async function xenCr(args: readonly string[], options: { permissionsApply?: boolean } = {}): Promise<Outcome> {
  const command =
    options.permissionsApply === true && AS_ROOT
      ? ['setpriv', '--bounding-set', '-dac_override,-dac_read_search', process.execPath]
      : [process.execPath]
  const child = spawn(command[0]!, [...command.slice(1), BIN, ...args], {
    cwd: tmp.path,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmp.path, XDG_CONFIG_HOME: join(tmp.path, 'xdg') },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const [code, signal] = (await once(child, 'close')) as [number | null, string | null]
  return { code, signal, stdout, stderr }
}

/** One line on stderr ending in the code, nothing on stdout. */
function expectOneLineRefusal(outcome: Outcome, exit: number, code: string, message: RegExp): void {
  expect(outcome.code, outcome.stderr).toBe(exit)
  const lines = outcome.stderr.trimEnd().split('\n')
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(message)
  expect(lines[0]).toMatch(new RegExp(`\\[${code}\\]$`))
  expect(lines[0]).not.toMatch(/unexpected|please report/)
  expect(outcome.stdout).toBe('')
}

const SPEC = {
  pools: [
    {
      name: 'src',
      srs: [{ name: 'Local storage' }],
      vms: [
        { name: 'web', disks: [{ name: 'web root', size: '4 MiB', filled: '1 MiB', seed: 1 }] },
        { name: 'db', disks: [{ name: 'db root', size: '4 MiB', filled: '1 MiB', seed: 2 }] },
      ],
    },
    { name: 'tgt', srs: [{ name: 'Replica' }] },
  ],
}

let lab: Lab
let source: XapiClient
let target: XapiClient
const uuids = { web: '', db: '', vdi: '', snapshot: '', sr: '' }
beforeAll(async () => {
  lab = await startTempLab(SPEC)
  source = await connectLabPool(labPool(lab, 'src'))
  target = await connectLabPool(labPool(lab, 'tgt'))
  const vms = await source.getAllRecords('VM')
  const vmRef = (name: string) => [...vms].find(([, vm]) => vm.name_label === name)![0]
  uuids.web = vms.get(vmRef('web'))!.uuid
  uuids.db = vms.get(vmRef('db'))!.uuid
  uuids.vdi = [...(await source.getAllRecords('VDI')).values()].find(vdi => vdi.name_label === 'web root')!.uuid
  const snapshot = await source.call<Ref<'VM'>>('VM.snapshot', [vmRef('web'), 'web before upgrade'])
  uuids.snapshot = (await source.getRecord('VM', snapshot)).uuid
  uuids.sr = [...(await target.getAllRecords('SR')).values()].find(sr => sr.name_label === 'Replica')!.uuid
})
afterAll(async () => {
  await source?.close()
  await target?.close()
  await lab?.stop()
})

/** Global flags of a row that uses the lab, with a job store of the row's own. */
function labFlags(): string[] {
  return ['--config', lab.configPath, '--jobs-file', join(tmp.path, 'jobs.json')]
}

async function createJob(name: string, vm: string): Promise<string> {
  const created = await xenCr([
    ...labFlags(),
    '--json',
    'job',
    'create',
    '--name',
    name,
    '--source',
    'src',
    '--target',
    'tgt',
    '--sr',
    uuids.sr,
    '--vm',
    vm,
    '--interval',
    '1h',
  ])
  expect(created.code, created.stderr).toBe(0)
  return (JSON.parse(created.stdout.split('\n')[0]!) as { job: { id: string } }).job.id
}

async function targetVmCount(): Promise<number> {
  return (await target.getAllRecords('VM')).size
}

describe('bad input: one line, a documented exit code, nothing written', () => {
  interface Row {
    name: string
    /** prepares the row's files and gives the arguments */
    args: () => Promise<string[]>
    /** run where file permissions stop the process, root included */
    permissionsApply?: boolean
    exit: number
    code: string
    message: RegExp
    /** what must not have been written */
    after?: () => Promise<void>
  }
  const rows: Row[] = [
    {
      name: 'config check on a {} config',
      args: async () => {
        await writeFile(join(tmp.path, 'c.json'), '{}')
        return ['--config', join(tmp.path, 'c.json'), 'config', 'check']
      },
      exit: 2,
      code: 'NO_POOLS_CONFIGURED',
      message: /no pools configured in .*c\.json; add a pool/,
    },
    {
      name: 'config check on an empty config file',
      args: async () => {
        await writeFile(join(tmp.path, 'c.json'), '')
        return ['--config', join(tmp.path, 'c.json'), 'config', 'check']
      },
      exit: 2,
      code: 'NO_POOLS_CONFIGURED',
      message: /no pools configured in .*c\.json; add a pool/,
    },
    {
      name: 'an unreadable config file',
      args: async () => {
        await writeFile(join(tmp.path, 'c.json'), '{}', { mode: 0o600 })
        await chmod(join(tmp.path, 'c.json'), 0)
        return ['--config', join(tmp.path, 'c.json'), 'config', 'show']
      },
      permissionsApply: true,
      exit: 2,
      code: 'CONFIG_UNREADABLE',
      message: /config file .*c\.json cannot be read \(EACCES\); check its permissions/,
    },
    {
      name: '--config naming a directory',
      args: async () => {
        await mkdir(join(tmp.path, 'etc'))
        return ['--config', join(tmp.path, 'etc'), 'config', 'show']
      },
      exit: 2,
      code: 'CONFIG_UNREADABLE',
      message: /config file .*etc \(from --config\) is a directory; give the path of the file in it/,
    },
    {
      name: '--jobs-file naming a directory',
      args: async () => {
        await mkdir(join(tmp.path, 'jobs'))
        return ['--jobs-file', join(tmp.path, 'jobs'), 'job', 'list']
      },
      exit: 2,
      code: 'JOBS_FILE_UNREADABLE',
      message: /job store .*jobs is a directory; give the path of the file in it/,
    },
    {
      name: 'a read-only jobs folder',
      args: async () => {
        await mkdir(join(tmp.path, 'ro'), { mode: 0o555 })
        await chmod(join(tmp.path, 'ro'), 0o555)
        return ['--jobs-file', join(tmp.path, 'ro', 'jobs.json'), 'job', 'disable', 'nightly']
      },
      permissionsApply: true,
      exit: 2,
      code: 'JOBS_FILE_UNWRITABLE',
      message: /job store .*ro\/jobs\.json cannot be written \(EACCES\); check the path and its permissions/,
      after: async () => expect(await readdir(join(tmp.path, 'ro'))).toEqual([]),
    },
    {
      name: "a disk's uuid as job create --vm",
      args: async () => [
        ...labFlags(),
        'job',
        'create',
        '--name',
        'j',
        '--source',
        'src',
        '--target',
        'tgt',
        '--sr',
        uuids.sr,
        '--vm',
        uuids.vdi,
        '--interval',
        '1h',
      ],
      exit: 5,
      code: 'VM_NOT_REPLICABLE',
      message: /\("web root"\) on pool "src" is a disk \(VDI\), not a VM; give the uuid of the VM it belongs to/,
      after: async () => expect(await readdir(tmp.path)).toEqual([]),
    },
    {
      name: "a snapshot's uuid as job create --vm",
      args: async () => [
        ...labFlags(),
        'job',
        'create',
        '--name',
        'j',
        '--source',
        'src',
        '--target',
        'tgt',
        '--sr',
        uuids.sr,
        '--vm',
        uuids.snapshot,
        '--interval',
        '1h',
      ],
      exit: 5,
      code: 'VM_NOT_REPLICABLE',
      message: /\("web before upgrade"\) on pool "src" is a snapshot, not a VM; give the uuid of a VM/,
      after: async () => expect(await readdir(tmp.path)).toEqual([]),
    },
    {
      name: "a disk's uuid as seed export --vm",
      args: async () => {
        await createJob('j', uuids.web)
        return [...labFlags(), 'seed', 'export', '--job', 'j', '--vm', uuids.vdi, '--out', join(tmp.path, 'seed')]
      },
      exit: 5,
      code: 'SEED_VM_NOT_FOUND',
      message: /\("web root"\) is a disk \(VDI\), not a VM; give the uuid of the VM it belongs to/,
      after: async () => expect(await readdir(tmp.path)).not.toContain('seed'),
    },
    {
      name: 'seed export of a VM the job does not replicate',
      args: async () => {
        await createJob('j', uuids.web)
        return [...labFlags(), 'seed', 'export', '--job', 'j', '--vm', uuids.db, '--out', join(tmp.path, 'seed')]
      },
      exit: 5,
      code: 'SEED_VM_NOT_IN_JOB',
      message: /VM db \(.*\) is not one that job j replicates/,
      after: async () => expect(await readdir(tmp.path)).not.toContain('seed'),
    },
  ]

  it.each(rows)('$name: exit $exit [$code]', async row => {
    const outcome = await xenCr(await row.args(), { permissionsApply: row.permissionsApply === true })
    expectOneLineRefusal(outcome, row.exit, row.code, row.message)
    await row.after?.()
  })

  it('seed import of a seed whose VM the job no longer replicates: exit 5, no VM on the target', async () => {
    await createJob('j', uuids.web)
    const seed = join(tmp.path, 'seed')
    const exported = await xenCr([...labFlags(), 'seed', 'export', '--job', 'j', '--vm', uuids.web, '--out', seed])
    expect(exported.code, exported.stderr).toBe(0)
    const edited = await xenCr([...labFlags(), 'job', 'edit', 'j', '--vm', uuids.db])
    expect(edited.code, edited.stderr).toBe(0)
    const before = await targetVmCount()
    const refused = await xenCr([...labFlags(), 'seed', 'import', '--job', 'j', '--from', seed, '--sr', uuids.sr])
    expectOneLineRefusal(refused, 5, 'SEED_VM_NOT_IN_JOB', /is a seed of VM web \(.*\), which job j does not replicate/)
    expect(await targetVmCount()).toBe(before)
  })

  it('config check: a pool that refuses the login is reported on stderr, the pools that work on stdout', async () => {
    const config = JSON.parse(await readFile(lab.configPath, 'utf8')) as {
      pools: Record<string, { passwordFile: string }>
    }
    config.pools['src']!.passwordFile = join(lab.dir, config.pools['src']!.passwordFile)
    config.pools['tgt']!.passwordFile = join(tmp.path, 'wrong.password')
    await writeFile(join(tmp.path, 'wrong.password'), 'wrong', { mode: 0o600 })
    await writeFile(join(tmp.path, 'c.json'), JSON.stringify(config))
    const outcome = await xenCr(['--config', join(tmp.path, 'c.json'), 'config', 'check'])
    expect(outcome.code).toBe(4)
    expect(outcome.stdout).toMatch(/^ok pool src: logged in to /)
    expect(outcome.stdout).not.toMatch(/tgt/)
    expect(outcome.stderr).toMatch(/FAILED pool tgt: .*\[POOL_AUTH_FAILED\]\n$/)
  })
})

describe('a second xen-cr lab on the same --dir', () => {
  it('is refused naming the directory and the pid that holds it, and writes nothing', async () => {
    const config = await readFile(lab.configPath, 'utf8')
    const manifest = await readFile(join(lab.dir, 'lab.json'), 'utf8')
    const second = await xenCr(['lab', '--dir', lab.dir, '--login-delay', '0'])
    expectOneLineRefusal(
      second,
      2,
      'LAB_DIR_IN_USE',
      new RegExp(`lab directory ${lab.dir} is in use by process ${process.pid} .*; stop that lab first`),
    )
    expect(await readFile(lab.configPath, 'utf8')).toBe(config)
    expect(await readFile(join(lab.dir, 'lab.json'), 'utf8')).toBe(manifest)
  })

  it('takes over the lock of a lab that died without removing it, and removes its own on stop', async () => {
    const dead = spawn(process.execPath, ['-e', ''])
    await once(dead, 'exit')
    await writeFile(join(tmp.path, 'lab.lock'), `${dead.pid}\n`)
    const restarted = await startLab({ dir: tmp.path, spec: SPEC })
    expect(await readFile(join(tmp.path, 'lab.lock'), 'utf8')).toBe(`${process.pid}\n`)
    await restarted.stop()
    expect(await readdir(tmp.path)).not.toContain('lab.lock')
  })
})

describe('run --due exit codes with leases held elsewhere', () => {
  /** The job's lease on `vm` held in XAPI by a live run of another controller. */
  async function holdLease(jobId: string, vm: string): Promise<void> {
    await holdVmLease(source, vm, jobId)
  }
  afterEach(async () => {
    // the held leases are the test's: another row's job ids differ, but keep the VMs clean
    for (const uuid of [uuids.web, uuids.db]) {
      const ref = await source.getByUuid('VM', uuid)
      const oc = await source.call<Record<string, string>>('VM.get_other_config', [ref])
      for (const key of Object.keys(oc))
        if (key.startsWith('xen-cr:lease:')) await source.call('VM.remove_from_other_config', [ref, key])
    }
  })

  interface DueDone {
    kind: 'run-due-done'
    exitCode: number
    jobs: { name: string; status: string; code?: string; vms: { uuid: string; status: string }[] }[]
  }
  function dueDone(stdout: string): DueDone {
    const events = stdout
      .trim()
      .split('\n')
      .map(line => JSON.parse(line) as { kind: string })
    return events.find(event => event.kind === 'run-due-done') as DueDone
  }
  const leasedVm = (uuid: string, name: string) => ({
    uuid,
    name,
    status: 'skipped',
    reason: 'leased',
    message: expect.stringMatching(
      new RegExp(`^leased by ${OTHER_CONTROLLER.host}/${OTHER_CONTROLLER.pid} until \\d{4}-.*Z$`),
    ) as string,
  })

  it('exits 1 when one job is leased and another job ran with a failed VM, and says so per job and per VM', async () => {
    await holdLease(await createJob('leased', uuids.web), uuids.web)
    await createJob('failing', uuids.db)
    lab.control.injectFault('src', { kind: 'error', method: 'VM.snapshot', code: 'SR_BACKEND_FAILURE_44', nth: 1 })
    const outcome = await xenCr([...labFlags(), '--json', 'run', '--due'])
    expect(outcome.code, outcome.stderr).toBe(1)
    const done = dueDone(outcome.stdout)
    expect(done.exitCode).toBe(1)
    expect(done.jobs).toEqual([
      { id: expect.any(String) as string, name: 'leased', status: 'leased', vms: [leasedVm(uuids.web, 'web')] },
      {
        id: expect.any(String) as string,
        name: 'failing',
        status: 'failed',
        vms: [
          {
            uuid: uuids.db,
            name: 'db',
            status: 'failed',
            code: 'XAPI_SR_BACKEND_FAILURE_44',
            message: expect.any(String) as string,
          },
        ],
      },
    ])
  })

  it('exits 3 only when nothing ran because every due job is leased', async () => {
    await holdLease(await createJob('leased', uuids.web), uuids.web)
    const outcome = await xenCr([...labFlags(), '--json', 'run', '--due'])
    expect(outcome.code, outcome.stderr).toBe(3)
    expect(dueDone(outcome.stdout).jobs.map(job => job.status)).toEqual(['leased'])
  })

  it('exits 0 when the job that ran succeeded although another was leased', async () => {
    await holdLease(await createJob('leased', uuids.web), uuids.web)
    await createJob('fine', uuids.db)
    const outcome = await xenCr([...labFlags(), '--json', 'run', '--due'])
    expect(outcome.code, outcome.stderr).toBe(0)
    const done = dueDone(outcome.stdout)
    expect(done.jobs.map(job => [job.name, job.status])).toEqual([
      ['leased', 'leased'],
      ['fine', 'ok'],
    ])
    expect(done.jobs[1]!.vms).toEqual([{ uuid: uuids.db, name: 'db', status: 'success' }])
  })
})

describe('a signal after the work completed', () => {
  // The child finishes its (stand-in) work, then signals itself while a timer keeps it alive:
  // only the signal can end it, so the exit shows what the signal did, with no timing involved.
  it.each([
    ['SIGTERM', 0],
    ['SIGINT', 0],
    ['SIGTERM', 1],
  ] as const)('%s after a run that ended %i keeps that exit code', async (signal, exitCode) => {
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { pathToFileURL } from 'node:url'
         const [modulePath, code, signal] = process.argv.slice(1)
         const { runAsProcess } = await import(pathToFileURL(modulePath).href)
         setTimeout(() => {}, 60_000)
         await runAsProcess(async () => Number(code))
         process.kill(process.pid, signal)`,
        PROCESS_ENTRY,
        String(exitCode),
        signal,
      ],
      { stdio: 'ignore' },
    )
    const [code, killedBy] = (await once(child, 'exit')) as [number | null, string | null]
    expect({ code, killedBy }).toEqual({ code: exitCode, killedBy: null })
  })
})
