/**
 * The real binary as cron runs it: a child process of `node bin/xen-cr.js` (needs `npm run
 * build`, which `npm test` does first). Checks what only a process can show: the exit status,
 * plain output on a pipe, and that SIGINT aborts a run stuck on an unresponsive pool.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { makeTempDir } from '../helpers/tmp.js'

const BIN = fileURLToPath(new URL('../../bin/xen-cr.js', import.meta.url))

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
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null, stdout, stderr }))
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
    const server: Server = createServer((socket) => sockets.push(socket))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('no port')
    try {
      await writeFile(join(tmp.path, 'p.password'), 'x', { mode: 0o600 })
      await writeFile(join(tmp.path, 'xen-cr.config.json'), JSON.stringify({ pools: { p: { url: `http://127.0.0.1:${address.port}`, passwordFile: 'p.password' } } }))
      const { child, exited } = start(['--jobs-file', 'jobs.json', 'job', 'create', '--name', 'n', '--source', 'p', '--target', 'p', '--all-vms', '--interval', '1h'])
      // the login request reaching the server means the CLI is now waiting on it
      while (sockets.length === 0) await once(server, 'connection')
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
})
