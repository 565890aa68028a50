/**
 * The lab's NBD export read by independent clients: libnbd's `nbdinfo` and `nbdcopy` (package
 * libnbd-bin) and qemu-img's NBD driver connect to what `VDI.get_nbd_info` names, over TLS pinned
 * to the host certificate it returns (the address checked against the certificate), and must
 * read exactly the bytes `/export_raw_vdi?format=raw` sends. A handshake, TLS or framing mistake in the lab's server
 * would make libnbd fail or read other bytes; a missing tool fails the test, never skips it.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Lab } from '../../src/lab/start.js'
import { labPool, startTempLab } from '../helpers/lab.js'
import { makeTempDir } from '../helpers/tmp.js'
import { login, ok } from '../integration/lab-rpc.js'

const MiB = 1024 * 1024

interface NbdInfo {
  readonly address: string
  readonly port: number
  readonly cert: string
  readonly exportname: string
  readonly subject: string
}

interface Run {
  readonly code: number | null
  readonly stdout: Buffer
  readonly stderr: string
}

const PACKAGE: Record<string, string> = { nbdinfo: 'libnbd-bin', nbdcopy: 'libnbd-bin', 'qemu-img': 'qemu-utils' }

/** Runs a tool to its end; a missing tool is an error naming the package, so the test fails rather than skips. */
function runTool(command: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
    child.on('error', error =>
      reject(
        (error as NodeJS.ErrnoException).code === 'ENOENT'
          ? new Error(`${command} is not installed: apt-get install ${PACKAGE[command]} (.ci/run installs it)`)
          : error,
      ),
    )
    child.on('close', code =>
      resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') }),
    )
  })
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

let lab: Lab | undefined
let tmp: Awaited<ReturnType<typeof makeTempDir>>
let url: string
let session: string
let vdi: { ref: string; uuid: string; virtualSize: number }

beforeAll(async () => {
  tmp = await makeTempDir()
  lab = await startTempLab({
    pools: [
      {
        name: 'p',
        hosts: ['p-host1', 'p-host2'],
        srs: [{ name: 'shared', shared: true }],
        networks: [{ name: 'management' }],
        vms: [{ name: 'vm', disks: [{ size: '12 MiB', filled: '5 MiB', seed: 21 }] }],
      },
    ],
  })
  const pool = labPool(lab, 'p')
  url = pool.url
  session = await login(pool)
  vdi = lab.control.findVm('p', 'vm')!.vdis[0]!
  // bytes past the filled part and inside a block never filled, so zeros and data both count
  await lab.control.writeGuestData('p', vdi.uuid, [
    { offset: 9 * MiB + 12345, data: Buffer.from('written at an odd offset') },
    { offset: 12 * MiB - 7, data: Buffer.from('the end') },
  ])
})

afterAll(async () => {
  await lab?.stop()
  await tmp.remove()
})

/** What `/export_raw_vdi?format=raw` sends for the VDI. */
async function exportRaw(): Promise<Buffer> {
  const query = new URLSearchParams({ session_id: session, vdi: vdi.uuid, format: 'raw' })
  const response = await fetch(`${url}/export_raw_vdi?${query.toString()}`)
  expect(response.status).toBe(200)
  return Buffer.from(await response.arrayBuffer())
}

/** The certificate of `info` as a libnbd `tls-certificates` directory (its `ca-cert.pem`). */
async function pinned(info: NbdInfo, name: string): Promise<string> {
  const dir = join(tmp.path, name)
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'ca-cert.pem'), info.cert)
  return dir
}

function nbdUri(scheme: 'nbd' | 'nbds', info: NbdInfo, exportname: string, query = ''): string {
  return `${scheme}://${info.address}:${info.port}/${encodeURIComponent(exportname)}${query}`
}

describe('the lab NBD export, read by libnbd', () => {
  it('lists every host of the shared SR in VDI.get_nbd_info, each with its certificate and subject', async () => {
    const infos = await ok<NbdInfo[]>(url, 'VDI.get_nbd_info', session, vdi.ref)
    const hosts = labPool(lab!, 'p').hosts
    expect(infos.map(info => info.address)).toEqual(hosts.map(host => host.address))
    const hostRefs = await ok<string[]>(url, 'host.get_all', session)
    for (const [i, info] of infos.entries()) {
      expect(info.exportname).toBe(`/${vdi.uuid}?session_id=${session}`)
      expect(info.port).toBe(infos[0]!.port)
      expect(info.subject).toBe(hosts[i]!.name)
      expect(info.cert).toBe(await ok<string>(url, 'host.get_server_certificate', session, hostRefs[i]))
      expect(info.cert).toMatch(/^-----BEGIN CERTIFICATE-----\n/)
    }
  })

  it('gives nbdinfo and nbdcopy over TLS (certificate pinned) the bytes /export_raw_vdi sends', async () => {
    const expected = await exportRaw()
    expect(expected.length).toBe(vdi.virtualSize)
    lab!.control.resetTransferStats('p')
    for (const info of await ok<NbdInfo[]>(url, 'VDI.get_nbd_info', session, vdi.ref)) {
      const certs = `?tls-certificates=${encodeURIComponent(await pinned(info, info.subject))}`
      const uri = nbdUri('nbds', info, info.exportname, certs)
      const described = await runTool('nbdinfo', ['--json', '--no-content', uri])
      expect(described.stderr).toBe('')
      expect(described.code).toBe(0)
      const json = JSON.parse(described.stdout.toString('utf8')) as {
        exports: { 'export-name': string; 'export-size': number; is_read_only: boolean; can_multi_conn: boolean }[]
        TLS: boolean
      }
      expect(json.TLS).toBe(true)
      expect(json.exports[0]).toMatchObject({
        'export-name': info.exportname,
        'export-size': vdi.virtualSize,
        is_read_only: true,
        can_multi_conn: true,
      })
      const copied = await runTool('nbdcopy', ['--synchronous', uri, '-'])
      expect(copied.stderr).toBe('')
      expect(copied.code).toBe(0)
      expect(copied.stdout.length).toBe(vdi.virtualSize)
      expect(sha256(copied.stdout)).toBe(sha256(expected))
    }
    // every byte read came over NBD, once per host (nbdinfo --no-content reads no data)
    const stats = lab!.control.transferStats('p')
    expect(stats.nbd.bytes).toBe(2 * vdi.virtualSize)
    expect(stats.nbd.byVdi).toEqual({ [vdi.uuid]: 2 * vdi.virtualSize })
    expect(stats.exportRawVdi.bytes).toBe(0)
  })

  it('gives qemu-img (nbd driver, x509 credentials of the pinned certificate) the same bytes', async () => {
    const [info] = await ok<NbdInfo[]>(url, 'VDI.get_nbd_info', session, vdi.ref)
    const dir = await pinned(info!, 'qemu')
    const out = join(tmp.path, 'qemu.raw')
    const server = `server.type=inet,server.host=${info!.address},server.port=${info!.port}`
    // qemu's option syntax doubles a comma inside a value; the export name has none
    const converted = await runTool('qemu-img', [
      'convert',
      '--object',
      `tls-creds-x509,id=tls0,endpoint=client,dir=${dir}`,
      '--image-opts',
      `driver=nbd,${server},export=${info!.exportname},tls-creds=tls0`,
      '-O',
      'raw',
      out,
    ])
    expect(converted.stderr).toBe('')
    expect(converted.code).toBe(0)
    expect(sha256(await readFile(out))).toBe(sha256(await exportRaw()))
  })

  it('refuses a client without TLS, an invalid session and an unknown VDI', async () => {
    const [info] = await ok<NbdInfo[]>(url, 'VDI.get_nbd_info', session, vdi.ref)
    const certs = `?tls-certificates=${encodeURIComponent(await pinned(info!, 'refusals'))}`
    const plain = await runTool('nbdinfo', ['--json', nbdUri('nbd', info!, info!.exportname)])
    // libnbd reports NBD_REP_ERR_TLS_REQD as "Operation not supported"
    expect(plain.code).not.toBe(0)
    expect(plain.stderr).toMatch(/opt_go: server replied with error/)
    const badSession = await runTool('nbdinfo', [
      '--json',
      nbdUri('nbds', info!, `/${vdi.uuid}?session_id=OpaqueRef:00000000-0000-0000-0000-000000000000`, certs),
    ])
    // libnbd 1.14 does not print the server's message; the same URI with a valid session reads (above)
    expect(badSession.code).not.toBe(0)
    expect(badSession.stderr).toMatch(/opt_go: server replied with error/)
    expect(badSession.stderr).not.toMatch(/No such file/)
    const unknown = await runTool('nbdinfo', [
      '--json',
      nbdUri('nbds', info!, `/00000000-0000-0000-0000-000000000000?session_id=${session}`, certs),
    ])
    expect(unknown.code).not.toBe(0)
    // NBD_REP_ERR_UNKNOWN, which libnbd reports as ENOENT
    expect(unknown.stderr).toMatch(/No such file or directory/)
  })

  it('serves plain NBD on an insecure_nbd network, and nothing once no network allows NBD', async () => {
    const [network] = await ok<string[]>(url, 'network.get_all', session)
    expect(await ok(url, 'network.get_purpose', session, network)).toEqual(['nbd'])
    await ok(url, 'network.remove_purpose', session, network, 'nbd')
    expect(await ok(url, 'VDI.get_nbd_info', session, vdi.ref)).toEqual([])
    await ok(url, 'network.add_purpose', session, network, 'insecure_nbd')
    try {
      const [info] = await ok<NbdInfo[]>(url, 'VDI.get_nbd_info', session, vdi.ref)
      const copied = await runTool('nbdcopy', ['--synchronous', nbdUri('nbd', info!, info!.exportname), '-'])
      expect(copied.stderr).toBe('')
      expect(sha256(copied.stdout)).toBe(sha256(await exportRaw()))
      const tls = await runTool('nbdinfo', ['--json', nbdUri('nbds', info!, info!.exportname)])
      expect(tls.code).not.toBe(0)
    } finally {
      await ok(url, 'network.remove_purpose', session, network, 'insecure_nbd')
      await ok(url, 'network.add_purpose', session, network, 'nbd')
    }
  })
})
