/**
 * `xen-cr lab` as a real process: with `--json` it prints exactly one line once every host
 * listens, serves a VM whose 2 TiB disk has 1 GiB written while staying under 200 MiB RSS
 * (peak, from /proc — a lab that held disks or blocks in memory would need over 1 GiB), and ends
 * cleanly on SIGTERM. It runs the built binary, with its own signal handling.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { LabSpec } from '../../src/lab/spec.js'
import { builtBinary } from '../helpers/built.js'
import { makeTempDir } from '../helpers/tmp.js'
import { ok } from './lab-rpc.js'

const MiB = 1024 * 1024
const SPEC: LabSpec = {
  pools: [
    {
      name: 'big',
      srs: [{ name: 'sr', size: '4 TiB' }],
      vms: [{ name: 'huge', powerState: 'Running', disks: [{ size: '2 TiB', filled: '1 GiB', seed: 3 }] }],
    },
    { name: 'empty', srs: [{ name: 'sr' }] },
  ],
}

let tmp: { path: string; remove: () => Promise<void> }
let child: ChildProcess | undefined

beforeAll(async () => {
  tmp = await makeTempDir()
})

afterAll(async () => {
  if (child?.exitCode === null) child.kill('SIGKILL')
  await tmp?.remove()
})

/** Peak and current resident set size of a process, in bytes (Linux /proc). */
async function rssOf(pid: number): Promise<{ peak: number; now: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024
  return { peak: kib('VmHWM'), now: kib('VmRSS') }
}

it('prints one JSON line, serves a 2 TiB VM with 1 GiB written under 200 MiB RSS, and stops on SIGTERM', async () => {
  const main = builtBinary()
  const specFile = join(tmp.path, 'spec.json')
  await writeFile(specFile, JSON.stringify(SPEC))
  const dir = join(tmp.path, 'lab')
  const proc = spawn(
    process.execPath,
    [main, 'lab', '--json', '--spec', specFile, '--dir', dir, '--login-delay', '0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  child = proc
  let stderr = ''
  proc.stderr!.on('data', chunk => (stderr += String(chunk)))
  const lines: string[] = []
  const reader = createInterface({ input: proc.stdout! })
  const firstLine = new Promise<string>((resolve, reject) => {
    reader.on('line', line => {
      lines.push(line)
      if (lines.length === 1) resolve(line)
    })
    proc.once('exit', code => reject(new Error(`lab exited with ${code} before printing: ${stderr}`)))
  })
  const exited = new Promise<number | null>(resolve => proc.once('exit', code => resolve(code)))

  const info = JSON.parse(await firstLine) as {
    pools: {
      name: string
      url: string
      user: string
      password: string
      hosts: { name: string; uuid: string; url: string; address: string }[]
    }[]
    config: string
  }
  expect(Object.keys(info)).toEqual(['pools', 'config'])
  expect(info.pools.map(p => p.name)).toEqual(['big', 'empty'])
  for (const pool of info.pools) {
    expect(Object.keys(pool)).toEqual(['name', 'url', 'user', 'password', 'hosts'])
    expect(pool.url).toMatch(/^http:\/\/127\.0\.0\.\d+:\d+$/)
    expect(Object.keys(pool.hosts[0]!).sort()).toEqual(['address', 'name', 'url', 'uuid'])
  }
  expect(info.config).toBe(join(dir, 'xen-cr.config.json'))
  const config = JSON.parse(await readFile(info.config, 'utf8')) as unknown
  expect(config).toEqual({
    pools: {
      big: { url: info.pools[0]!.url, user: 'root', passwordFile: 'big.password', allowUnauthorized: false },
      empty: { url: info.pools[1]!.url, user: 'root', passwordFile: 'empty.password', allowUnauthorized: false },
    },
    defaults: { jobsFile: 'jobs.json' },
  })
  expect((await stat(join(dir, 'big.password'))).mode & 0o777).toBe(0o600)

  // Work the big VM through the API: records, events, a snapshot, a guest write.
  const { url, user, password } = info.pools[0]!
  const session = await ok<string>(url, 'session.login_with_password', user, password)
  const vms = await ok<Record<string, { name_label: string; VBDs: string[] }>>(url, 'VM.get_all_records', session)
  const [vmRef] = Object.entries(vms).find(([, vm]) => vm.name_label === 'huge')!
  const vdis = await ok<Record<string, { virtual_size: number; physical_utilisation: number }>>(
    url,
    'VDI.get_all_records',
    session,
  )
  expect(Object.values(vdis).map(v => [v.virtual_size, v.physical_utilisation])).toEqual([[2 * 1024 ** 4, 1024 * MiB]])
  await ok(url, 'VM.snapshot', session, vmRef, 'snap')
  await ok(url, 'event.from', session, ['*'], '', 1)
  const write = await fetch(new URL('/lab/guest-data', url), {
    method: 'POST',
    body: JSON.stringify({ pool: 'big', target: vmRef, blocks: [0, 524287, 1048575], seed: 9 }),
  })
  expect(write.status).toBe(200)

  const rss = await rssOf(proc.pid!)
  console.info(
    `lab RSS with a 2 TiB disk, 1 GiB written: peak ${(rss.peak / MiB).toFixed(1)} MiB, now ${(rss.now / MiB).toFixed(1)} MiB`,
  )
  expect(rss.peak).toBeLessThan(200 * MiB)

  proc.kill('SIGTERM')
  expect(await exited).toBe(0)
  expect(lines).toHaveLength(1)
})
