/**
 * The real binary as cron runs it: a child process of `node bin/xen-cr.js` (needs a current
 * `npm run build`, which `npm test` does first; builtBinary() fails at once otherwise). Checks what only a process can show: the exit status,
 * plain output on a pipe, and that SIGINT aborts a run stuck on an unresponsive pool.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { builtBinary } from '../helpers/built.js'
import { startTempLab } from '../helpers/lab.js'
import { makeTempDir } from '../helpers/tmp.js'

const BIN = builtBinary()

let tmp: { path: string; remove: () => Promise<void> }
beforeEach(async () => {
  tmp = await makeTempDir()
})
afterEach(async () => {
  await tmp.remove()
})

function start(args: string[]) {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: tmp.path,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmp.path },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as string | null,
    stdout,
    stderr,
  }))
  return { child, exited }
}

describe('bin/xen-cr.js', () => {
  it('exits with the code of the table and prints plain lines on a pipe', async () => {
    const ok = await start(['--jobs-file', 'jobs.json', 'job', 'list']).exited
    expect(ok).toMatchObject({ code: 0, stdout: 'no jobs; create one with: xen-cr job create --help\n' })
    await writeFile(join(tmp.path, 'xen-cr.config.json'), '{"pools": {"p": {"url": 7}}}')
    const bad = await start(['job', 'list']).exited
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/^\S+Z error .*pools\.p\.url.* \[CONFIG_INVALID\]\n$/)
  })

  it('aborts on SIGINT while a pool does not answer', async () => {
    // accepts connections and never answers, like a host that hangs
    const sockets: Socket[] = []
    const server: Server = createServer(socket => sockets.push(socket))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('no port')
    try {
      await writeFile(join(tmp.path, 'p.password'), 'x', { mode: 0o600 })
      await writeFile(
        join(tmp.path, 'xen-cr.config.json'),
        JSON.stringify({ pools: { p: { url: `http://127.0.0.1:${address.port}`, passwordFile: 'p.password' } } }),
      )
      const { child, exited } = start([
        '--jobs-file',
        'jobs.json',
        'job',
        'create',
        '--name',
        'n',
        '--source',
        'p',
        '--target',
        'p',
        '--all-vms',
        '--interval',
        '1h',
      ])
      // the login request reaching the server means the CLI is now waiting on it; a binary that
      // dies before connecting fails the test instead of leaving it waiting for the timeout
      const diedEarly = exited.then(early => {
        throw new Error(`xen-cr exited before connecting (code ${early.code}): ${early.stderr}`)
      })
      diedEarly.catch(() => {})
      while (sockets.length === 0) await Promise.race([once(server, 'connection'), diedEarly])
      child.kill('SIGINT')
      const result = await exited
      expect(result.signal).toBeNull()
      expect(result.code).toBe(1)
      expect(result.stderr).toContain('[ABORTED]')
    } finally {
      for (const socket of sockets) socket.destroy()
      server.close()
    }
  })

  it('finishes the pass when its reader goes away (`xen-cr --json run job | head -1`)', async () => {
    // Without the fix the first write after the reader closed threw EPIPE, killed the process
    // mid-import and left an "[Importing…]" replica behind.
    const lab = await startTempLab({
      pools: [
        {
          name: 'src',
          srs: [{ name: 'sr' }],
          vms: [{ name: 'vm', disks: [{ size: '16 MiB', filled: '8 MiB', seed: 5 }] }],
        },
        { name: 'dst', srs: [{ name: 'sr' }] },
      ],
    })
    try {
      const args = ['--config', lab.configPath, '--jobs-file', join(tmp.path, 'jobs.json')]
      expect(
        (
          await start([
            ...args,
            'job',
            'create',
            '--name',
            'j',
            '--source',
            'src',
            '--target',
            'dst',
            '--all-vms',
            '--interval',
            '1h',
          ]).exited
        ).code,
      ).toBe(0)
      const { child, exited } = start([...args, '--json', 'run', 'j'])
      await once(child.stdout, 'data')
      child.stdout.destroy()
      const result = await exited
      expect(result.signal).toBeNull()
      expect(result.code).toBe(0)
      const listed = await start([...args, '--json', 'list', 'j']).exited
      const replicas = (
        JSON.parse(listed.stdout.trim()) as {
          listings: { vms: { replicas: { name: string; complete: boolean }[] }[] }[]
        }
      ).listings[0]!.vms[0]!.replicas
      expect(replicas).toHaveLength(1)
      expect(replicas[0]).toMatchObject({ complete: true })
      expect(replicas[0]?.name).toMatch(/^vm - j - \(\d{8}T\d{6}Z\)$/)
    } finally {
      await lab.stop()
    }
  })
})
