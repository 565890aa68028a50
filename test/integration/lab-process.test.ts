/**
 * `xen-cr lab` as a real process: with `--json` it prints exactly one line once every host
 * listens, serves a VM whose 2 TiB disk has 1 GiB written (records, a snapshot, guest writes at
 * both ends of the disk, every byte read back as written), and ends cleanly on SIGTERM. It runs
 * the built binary, with its own signal handling. How much memory that takes is measured by
 * `npm run bench`, not here: an RSS limit does not hold on a busy machine.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { LabSpec } from '../../src/lab/spec.js'
import { guestBlock } from '../../src/lab/storage/guest-data.js'
import { builtBinary } from '../helpers/built.js'
import { makeTempDir } from '../helpers/tmp.js'
import { ok } from './lab-rpc.js'

const MiB = 1024 * 1024
const BLOCK = 2 * MiB
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

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** The hash of one 2 MiB block of a VM's first disk, read through the lab control API. */
async function blockHash(url: string, vm: string, index: number): Promise<string> {
  const query = new URLSearchParams({ pool: 'big', target: vm, offset: String(index * BLOCK), length: String(BLOCK) })
  const response = await fetch(new URL(`/lab/guest-data?${query.toString()}`, url))
  expect(response.status).toBe(200)
  return sha256(Buffer.from(await response.arrayBuffer()))
}

it('prints one JSON line, serves a 2 TiB VM with 1 GiB written, and stops on SIGTERM', async () => {
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
  proc.stderr.on('data', chunk => (stderr += String(chunk)))
  const lines: string[] = []
  const reader = createInterface({ input: proc.stdout })
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
      httpsUrl: string
      xapiVersion: string
      hosts: { name: string; uuid: string; url: string; address: string; httpsUrl: string; fingerprint: string }[]
    }[]
    config: string
    httpsConfig: string
  }
  // the same pools over HTTPS, every host's certificate pinned, in a config of its own
  expect(Object.keys(info)).toEqual(['pools', 'config', 'httpsConfig'])
  expect(info.httpsConfig).toBe(join(dir, 'xen-cr.https.config.json'))
  const httpsConfig = JSON.parse(await readFile(info.httpsConfig, 'utf8')) as {
    pools: Record<string, { url: string; fingerprint: string[] }>
  }
  expect(Object.keys(httpsConfig.pools)).toEqual(['big', 'empty'])
  for (const [i, pool] of Object.values(httpsConfig.pools).entries()) {
    expect(pool.url).toBe(info.pools[i]!.httpsUrl)
    expect(pool.fingerprint).toEqual(info.pools[i]!.hosts.map(h => h.fingerprint))
  }
  expect(info.pools.map(p => p.name)).toEqual(['big', 'empty'])
  for (const pool of info.pools) {
    expect(Object.keys(pool)).toEqual(['name', 'url', 'httpsUrl', 'xapiVersion', 'user', 'password', 'hosts'])
    expect(pool.url).toMatch(/^http:\/\/127\.0\.0\.\d+:\d+$/)
    expect(pool.httpsUrl).toMatch(/^https:\/\/127\.0\.0\.\d+:\d+$/)
    expect(pool.xapiVersion).toBe(process.env['XEN_CR_LAB_XAPI_VERSION'] || 'current')
    expect(Object.keys(pool.hosts[0]!).sort()).toEqual(['address', 'fingerprint', 'httpsUrl', 'name', 'url', 'uuid'])
    expect(pool.hosts[0]!.fingerprint).toMatch(/^sha256:([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
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
  const snapshot = await ok<string>(url, 'VM.snapshot', session, vmRef, 'snap')
  await ok(url, 'event.from', session, ['*'], '', 1)
  const last = (2 * 1024 ** 4) / BLOCK - 1
  const write = await fetch(new URL('/lab/guest-data', url), {
    method: 'POST',
    body: JSON.stringify({ pool: 'big', target: vmRef, blocks: [0, 524287, last], seed: 9 }),
  })
  expect(write.status).toBe(200)

  // the spec's fill (seed 3) covers blocks 0–511; the guest write replaced three blocks after
  // the snapshot, which still holds the filled block 0
  const zeros = sha256(Buffer.alloc(BLOCK))
  const expected: [string, number, string][] = [
    [vmRef, 0, sha256(guestBlock(9, 0))],
    [vmRef, 1, sha256(guestBlock(3, 1))],
    [vmRef, 511, sha256(guestBlock(3, 511))],
    [vmRef, 512, zeros],
    [vmRef, 524287, sha256(guestBlock(9, 524287))],
    [vmRef, last - 1, zeros],
    [vmRef, last, sha256(guestBlock(9, last))],
    [snapshot, 0, sha256(guestBlock(3, 0))],
    [snapshot, last, zeros],
  ]
  const actual: [string, number, string][] = []
  for (const [vm, index] of expected) actual.push([vm, index, await blockHash(url, vm, index)])
  expect(actual).toEqual(expected)

  proc.kill('SIGTERM')
  expect(await exited).toBe(0)
  expect(lines).toHaveLength(1)
})
