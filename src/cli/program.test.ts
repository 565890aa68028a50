import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { JobStore } from '../jobs/job-store.js'
import { CaptureStream } from '../../test/helpers/capture-stream.js'
import { makeTempDir } from '../../test/helpers/tmp.js'
import { run } from './program.js'

let tmp: { path: string; remove: () => Promise<void> }
beforeEach(async () => {
  tmp = await makeTempDir()
})
afterEach(async () => {
  vi.restoreAllMocks()
  await tmp.remove()
})

async function cli(argv: string[], env: Record<string, string> = {}) {
  const stdout = new CaptureStream()
  const stderr = new CaptureStream()
  const code = await run(argv, {
    stdout,
    stderr,
    env: { XDG_CONFIG_HOME: join(tmp.path, 'xdg'), HOME: tmp.path, ...env },
    cwd: tmp.path,
  })
  return { code, stdout, stderr }
}

describe('run', () => {
  it("exits 2 with commander's one-line message for an unknown option", async () => {
    const { code, stderr, stdout } = await cli(['job', 'list', '--bogus'])
    expect(code).toBe(2)
    expect(stderr.text).toContain("unknown option '--bogus'")
    expect(stdout.text).toBe('')
  })

  it('exits 0 for --help and --version, printing to stdout', async () => {
    const help = await cli(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout.text).toContain('job')
    const version = await cli(['--version'])
    expect(version.code).toBe(0)
    expect(version.stdout.text.trim()).toMatch(/^\d+\.\d+\.\d+/)
  })

  it('turns a config error into one line and exit 2, and --json into one NDJSON error event on stderr', async () => {
    await writeFile(join(tmp.path, 'xen-cr.config.json'), JSON.stringify({ pools: { p: { url: 42 } } }))
    const plain = await cli(['job', 'list'])
    expect(plain.code).toBe(2)
    expect(plain.stderr.lines).toHaveLength(1)
    expect(plain.stderr.text).toContain('pools.p.url')
    expect(plain.stderr.text).toContain('[CONFIG_INVALID]')
    expect(plain.stderr.text).not.toContain('    at ')
    const json = await cli(['--json', 'job', 'list'])
    expect(json.code).toBe(2)
    expect(json.stdout.text).toBe('')
    const events = json.stderr.lines.map(line => JSON.parse(line) as { kind: string; code: string; exitCode: number })
    expect(events).toMatchObject([{ kind: 'error', code: 'CONFIG_INVALID', exitCode: 2 }])
  })

  it('emits a warning event for a literal password, through the one warning path', async () => {
    await writeFile(
      join(tmp.path, 'xen-cr.config.json'),
      JSON.stringify({ pools: { p: { url: 'https://h', password: 'hunter2' } } }),
    )
    const { code, stderr, stdout } = await cli(['job', 'list'])
    expect(code).toBe(0)
    expect(stderr.text).toContain('CONFIG_LITERAL_PASSWORD')
    expect(stderr.text + stdout.text).not.toContain('hunter2')
    const quiet = await cli(['--quiet', 'job', 'list'])
    expect(quiet.stderr.text).toBe('')
  })

  it('reads the job store named by --jobs-file and reports an unknown job as a usage error', async () => {
    const jobsFile = join(tmp.path, 'jobs.json')
    await writeFile(jobsFile, JSON.stringify({ version: 1, jobs: [] }))
    const list = await cli(['job', 'list', '--jobs-file', jobsFile, '--json'])
    expect(list.code).toBe(0)
    expect(JSON.parse(list.stdout.lines[0] ?? '')).toMatchObject({ kind: 'job-list', jobs: [] })
    const show = await cli(['job', 'show', 'nope', '--jobs-file', jobsFile])
    expect(show.code).toBe(2)
    expect(show.stderr.text).toContain('JOB_NOT_FOUND')
    expect(await readFile(jobsFile, 'utf8')).toBe(JSON.stringify({ version: 1, jobs: [] }))
  })

  it('shows an unexpected error (a bug) as one line and exit 1, with the stack only under --verbose', async () => {
    // stands in for a programming error deep in a command: any non-XenCrError
    vi.spyOn(JobStore.prototype, 'list').mockRejectedValue(new TypeError('boom'))
    const plain = await cli(['job', 'list'])
    expect(plain.code).toBe(1)
    expect(plain.stderr.lines).toHaveLength(1)
    expect(plain.stderr.text).toContain(
      'unexpected error: boom (--verbose shows the stack); please report it [UNEXPECTED]',
    )
    const verbose = await cli(['--verbose', 'job', 'list'])
    expect(verbose.code).toBe(1)
    expect(verbose.stderr.text).toContain('TypeError: boom')
    expect(verbose.stderr.text).toContain('    at ')
  })
})
