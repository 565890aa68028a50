/**
 * `xen-cr lab` in-process: the human output names every pool's URL and credentials and the
 * config file, the command runs until its signal aborts and then stops the lab (the URL stops
 * answering), and a bad flag is a usage error (exit 2) before anything starts, as are a bad
 * spec and a damaged state directory.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { makeTempDir } from '../helpers/tmp.js'
import { ok } from './lab-rpc.js'

class FirstWrite extends CaptureStream {
  readonly written: Promise<void>
  #resolve!: () => void
  constructor() {
    super()
    this.written = new Promise(resolve => (this.#resolve = resolve))
  }
  override _write(chunk: Buffer | string, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    super._write(chunk, encoding, callback)
    this.#resolve()
  }
}

it('prints URLs, credentials and the config path, runs until aborted, then stops the pools', async () => {
  const tmp = await makeTempDir()
  try {
    const stdout = new FirstWrite()
    const stderr = new CaptureStream()
    const controller = new AbortController()
    const exit = run(['lab', '--dir', 'state', '--login-delay', '0'], {
      stdout,
      stderr,
      cwd: tmp.path,
      env: {},
      signal: controller.signal,
    })
    await stdout.written
    const text = stdout.text
    const source = /pool source: (http:\/\/127\.0\.0\.\d+:\d+) {2}user root {2}password (\S+)/.exec(text)
    expect(source, text).not.toBeNull()
    expect(text).toMatch(/pool target: http:\/\/127\.0\.0\.\d+:\d+ {2}user root {2}password \S+/)
    expect(text).toContain(`config: ${join(tmp.path, 'state', 'xen-cr.config.json')}`)
    // each host: its http and https URLs, then the fingerprint of its certificate
    expect(text).toMatch(
      /host source-host2: http:\/\/127\.0\.0\.\d+:\d+ {2}https:\/\/127\.0\.0\.\d+:\d+\n {6}certificate sha256:(?:[0-9A-F]{2}:){31}[0-9A-F]{2}\n/,
    )
    expect(text).toContain(
      `over HTTPS, every host's certificate pinned: ${join(tmp.path, 'state', 'xen-cr.https.config.json')}`,
    )
    const session = await ok<string>(source![1]!, 'session.login_with_password', 'root', source![2]!)
    const names = Object.values(
      await ok<Record<string, { name_label: string; is_control_domain: boolean }>>(
        source![1]!,
        'VM.get_all_records',
        session,
      ),
    )
      .filter(vm => !vm.is_control_domain)
      .map(vm => vm.name_label)
      .sort()
    expect(names).toEqual(['db-01', 'idle-01', 'web-01'])
    controller.abort()
    expect(await exit).toBe(0)
    await expect(fetch(new URL('/jsonrpc', source![1]), { method: 'POST', body: '{}' })).rejects.toThrow()
  } finally {
    await tmp.remove()
  }
})

it('refuses a bad --login-delay as a usage error', async () => {
  const stdout = new CaptureStream()
  const stderr = new CaptureStream()
  expect(
    await run(['lab', '--login-delay', 'soon', '--dir', '/nonexistent/never-created'], { stdout, stderr, env: {} }),
  ).toBe(2)
  expect(stderr.text + stdout.text).toContain('--login-delay soon')
})

// The lab throws its own errors (it does not import the client's hierarchy); without their
// mapping at the CLI edge a bad spec would end as an "unexpected error" with exit 1.
it('refuses an unreadable or invalid spec and a damaged state directory as configuration errors', async () => {
  const tmp = await makeTempDir()
  try {
    await writeFile(join(tmp.path, 'bad.json'), '{"pools": [{"name": "no spaces allowed"}]}')
    await mkdir(join(tmp.path, 'damaged'))
    await writeFile(join(tmp.path, 'damaged', 'lab.json'), '{')
    const cases: [string[], string][] = [
      [['--spec', 'missing.json', '--dir', 'a'], 'LAB_SPEC_UNREADABLE'],
      [['--spec', 'bad.json', '--dir', 'b'], 'LAB_SPEC_INVALID'],
      [['--dir', 'damaged'], 'LAB_STATE_CORRUPT'],
    ]
    for (const [args, code] of cases) {
      const stdout = new CaptureStream()
      const stderr = new CaptureStream()
      const exit = await run(['--json', 'lab', '--login-delay', '0', ...args], {
        stdout,
        stderr,
        cwd: tmp.path,
        env: {},
      })
      expect([exit, stdout.text + stderr.text], args.join(' ')).toEqual([2, expect.stringContaining(`"${code}"`)])
    }
  } finally {
    await tmp.remove()
  }
})
