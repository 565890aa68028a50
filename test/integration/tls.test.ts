/**
 * TLS for real (issue 8 item 6): the lab serves HTTPS with a self-signed certificate per host,
 * and the CLI talks to it as it would to a stock XenServer pool. A pass with every host pinned
 * succeeds end to end (RPC and data paths over TLS); a wrong pin and an unpinned self-signed host
 * are refused in one line naming the host and what to do, exit 4, with nothing written;
 * allowUnauthorized works and says so exactly once. Without the TLS work the lab has no HTTPS
 * port, and xen-api (which knows only allowUnauthorized) refuses a pinned self-signed host.
 */
import { readFile, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import { hostCertificate } from '../../src/lab/nbd/certificate.js'
import { startLab } from '../../src/lab/start.js'
import { XapiClient } from '../../src/xapi/client.js'
import { awaitResponse, discard, openRequest } from '../../src/xapi/http-resource.js'
import { certificateFingerprint } from '../../src/xapi/tls.js'
import type { Lab } from '../../src/lab/start.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'
import { makeTempDir } from '../helpers/tmp.js'
import { SPEC } from './replication-fixture.js'

let lab: Lab | undefined
afterEach(async () => {
  await lab?.stop()
  lab = undefined
})

interface Outcome {
  readonly code: number
  readonly out: string
  readonly err: string
}

async function cli(config: string, args: string[], now?: Date): Promise<Outcome> {
  let out = ''
  let err = ''
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _e, cb) {
        append(chunk.toString())
        cb()
      },
    })
  const dir = lab!.dir
  const code = await run(['--config', config, ...args], {
    stdout: sink(s => (out += s)),
    stderr: sink(s => (err += s)),
    env: { HOME: dir, XDG_CONFIG_HOME: dir },
    cwd: dir,
    ...(now === undefined ? {} : { now: () => now }),
  })
  return { code, out, err }
}

type Event = { kind: string; [key: string]: unknown }
const events = (text: string): Event[] =>
  text
    .split('\n')
    .filter(line => line.startsWith('{'))
    .map(line => JSON.parse(line) as Event)

interface PoolEntry {
  url: string
  user: string
  passwordFile: string
  fingerprint?: string[]
  allowUnauthorized?: boolean
}

/** A copy of the lab's HTTPS config with each pool entry changed by `edit`; returns its path. */
async function httpsConfig(name: string, edit: (pool: PoolEntry, name: string) => PoolEntry): Promise<string> {
  const config = JSON.parse(await readFile(lab!.httpsConfigPath, 'utf8')) as { pools: Record<string, PoolEntry> }
  for (const [pool, entry] of Object.entries(config.pools)) config.pools[pool] = edit(entry, pool)
  const path = join(lab!.dir, name)
  await writeFile(path, JSON.stringify(config))
  return path
}

async function createJob(config: string): Promise<void> {
  const target = await connectLabPool(labPool(lab!, 'tgt'))
  const sr = [...(await target.getAllRecords('SR')).values()].find(s => s.name_label === 'Replica A')!.uuid
  await target.close()
  const source = await connectLabPool(labPool(lab!, 'src'))
  const vm = [...(await source.getAllRecords('VM')).values()].find(v => v.name_label === 'web')!.uuid
  await source.close()
  const created = await cli(config, [
    'job',
    'create',
    '--name',
    'tls',
    '--source',
    'src',
    '--target',
    'tgt',
    '--sr',
    sr,
    '--vm',
    vm,
    '--interval',
    '1h',
  ])
  // job create logs in to both pools: with allowUnauthorized it says so, once
  expect(created.err.split('\n').filter(line => line !== '' && !line.includes('[TLS_NOT_VERIFIED]'))).toEqual([])
  expect(created.code).toBe(0)
}

/** How many VMs (snapshots and replicas included) and VDIs each pool holds, read over plain HTTP. */
async function inventory(): Promise<Record<string, [number, number]>> {
  const counts: Record<string, [number, number]> = {}
  for (const name of ['src', 'tgt']) {
    const client = await connectLabPool(labPool(lab!, name))
    counts[name] = [(await client.getAllRecords('VM')).size, (await client.getAllRecords('VBD')).size]
    await client.close()
  }
  return counts
}

describe('TLS against the lab', () => {
  it('runs a full and a delta pass over HTTPS with every host pinned; config check shows the pins', async () => {
    lab = await startTempLab(SPEC)
    const pools = lab.pools.map(p => [p.name, p.httpsUrl, p.hosts.map(h => h.fingerprint)])
    const written = JSON.parse(await readFile(lab.httpsConfigPath, 'utf8')) as { pools: Record<string, PoolEntry> }
    for (const [name, url, fingerprints] of pools)
      expect(written.pools[name as string]).toMatchObject({ url, fingerprint: fingerprints })

    const check = await cli(lab.httpsConfigPath, ['--json', 'config', 'check'])
    expect(check.code).toBe(0)
    const checks = events(check.out).filter(e => e.kind === 'pool-check')
    expect(checks.map(e => [e['pool'], e['ok'], e['url']])).toEqual([
      ['src', true, labPool(lab, 'src').httpsUrl],
      ['tgt', true, labPool(lab, 'tgt').httpsUrl],
    ])
    expect(checks.map(e => e['certificate'])).toEqual([
      { fingerprint: labPool(lab, 'src').hosts[0]!.fingerprint, pinned: true },
      { fingerprint: labPool(lab, 'tgt').hosts[0]!.fingerprint, pinned: true },
    ])
    const human = await cli(lab.httpsConfigPath, ['config', 'check', 'tgt'])
    expect(human.out).toContain(`certificate ${labPool(lab, 'tgt').hosts[0]!.fingerprint} (pinned)`)

    await createJob(lab.httpsConfigPath)
    const first = await cli(lab.httpsConfigPath, ['--json', 'run', 'tls'])
    expect(first.err).toBe('')
    expect(first.code).toBe(0)
    // an hour later, as cron would
    const second = await cli(lab.httpsConfigPath, ['--json', 'run', 'tls'], new Date(Date.now() + 3_600_000))
    expect(second.code, second.out + second.err).toBe(0)
    const modes = [first, second].map(
      pass =>
        (events(pass.out).find(e => e.kind === 'vm-done') as unknown as { result: { status: string; mode: string } })
          .result,
    )
    expect(modes).toEqual([
      expect.objectContaining({ status: 'success', mode: 'full' }),
      expect.objectContaining({ status: 'success', mode: 'delta' }),
    ])
    // nothing warned about: the certificates were verified
    expect(events(first.out).filter(e => e.kind === 'warning')).toEqual([])
  })

  it('refuses a host whose certificate is not the pinned one: one line naming it, exit 4, nothing written', async () => {
    lab = await startTempLab(SPEC)
    await createJob(lab.httpsConfigPath)
    const wrong = `sha256:${'00:'.repeat(31)}00`
    const config = await httpsConfig('wrong-pin.json', (pool, name) =>
      name === 'tgt' ? { ...pool, fingerprint: [wrong] } : pool,
    )
    const before = await inventory()
    const result = await cli(config, ['run', 'tls'])
    expect(result.code).toBe(4)
    const lines = result.err.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain(labPool(lab, 'tgt').httpsUrl)
    expect(lines[0]).toContain(labPool(lab, 'tgt').hosts[0]!.fingerprint)
    expect(lines[0]).toContain('"fingerprint"')
    expect(lines[0]).toContain('POOL_TLS_FINGERPRINT')
    expect(await inventory()).toEqual(before)
  })

  it('refuses an unpinned self-signed host with the fingerprint to pin', async () => {
    lab = await startTempLab(SPEC)
    const config = await httpsConfig('unpinned.json', ({ fingerprint: _pins, ...pool }) => pool)
    const result = await cli(config, ['config', 'check', 'src'])
    expect(result.code).toBe(4)
    // a failed check is a diagnostic: stderr
    const lines = result.err.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain('POOL_TLS')
    expect(lines[0]).toContain(labPool(lab, 'src').httpsUrl)
    expect(lines[0]).toContain(`"fingerprint": "${labPool(lab, 'src').hosts[0]!.fingerprint}"`)
  })

  it('accepts any certificate with allowUnauthorized, and warns exactly once per run', async () => {
    lab = await startTempLab(SPEC)
    const config = await httpsConfig('unverified.json', ({ fingerprint: _pins, ...pool }) => ({
      ...pool,
      allowUnauthorized: true,
    }))
    await createJob(config)
    const result = await cli(config, ['--json', 'run', 'tls'])
    expect(result.code).toBe(0)
    const all = [...events(result.out), ...events(result.err)]
    expect(all.find(e => e.kind === 'vm-done')).toMatchObject({ result: { status: 'success', mode: 'full' } })
    const warnings = all.filter(e => e.kind === 'warning' && e['code'] === 'TLS_NOT_VERIFIED')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]!['message']).toContain('pools src, tgt')
  })

  it('sends not one byte, session included, to a host whose certificate does not pass', async () => {
    const certificate = hostCertificate('eavesdropper', '127.0.0.1')
    const received: Buffer[] = []
    let onData = (): void => undefined
    const server: TlsServer = createTlsServer({ cert: certificate.certPem, key: certificate.keyPem }, socket => {
      socket.on('data', (chunk: Buffer) => {
        received.push(chunk)
        onData()
      })
      socket.on('error', () => undefined)
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    try {
      const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
      const url = new URL(`${origin}/export_raw_vdi?session_id=OpaqueRef:SECRET&vdi=x`)
      const wrong = { allowUnauthorized: false, fingerprints: [`sha256:${'00:'.repeat(31)}00`] }
      const refused = await awaitResponse(openRequest(url, { method: 'GET', tls: wrong }).end(), url).catch(
        (error: unknown) => error,
      )
      expect(refused).toMatchObject({ code: 'POOL_TLS_FINGERPRINT', url: origin })
      const login = await XapiClient.connect({
        url: origin,
        user: 'root',
        password: 'SECRET',
        fingerprints: wrong.fingerprints,
      }).catch((error: unknown) => error)
      expect(login).toMatchObject({ code: 'POOL_TLS_FINGERPRINT' })
      expect(Buffer.concat(received).length).toBe(0)

      // control: pinned right, the same request reaches the host (so the count above can fail)
      const right = { allowUnauthorized: false, fingerprints: [certificateFingerprint(certificate.certPem)] }
      const req = openRequest(url, { method: 'GET', tls: right })
      req.end()
      await new Promise<void>(resolve => {
        onData = () => void (Buffer.concat(received).includes('SECRET') && resolve())
      })
      req.destroy()
      void awaitResponse(req, url).then(discard, () => undefined)
    } finally {
      server.close()
    }
  })

  it('keeps every host certificate, and so the pins, across a restart of the lab', async () => {
    const tmp = await makeTempDir('xen-cr-tls-restart-')
    try {
      const first = await startLab({ spec: SPEC, dir: tmp.path })
      const pins = first.pools.map(pool => pool.hosts.map(host => host.fingerprint))
      const config = await readFile(first.httpsConfigPath, 'utf8')
      await first.stop()
      const again = await startLab({ dir: tmp.path })
      try {
        expect(again.restored).toBe(true)
        expect(again.pools.map(pool => pool.hosts.map(host => host.fingerprint))).toEqual(pins)
        expect(await readFile(again.httpsConfigPath, 'utf8')).toBe(config)
        const pool = again.pools[0]!
        const client = await XapiClient.connect({
          url: pool.httpsUrl,
          user: pool.user,
          password: pool.password,
          fingerprints: pins[0]!,
        })
        await client.close()
      } finally {
        await again.stop()
      }
    } finally {
      await tmp.remove()
    }
  })
})
