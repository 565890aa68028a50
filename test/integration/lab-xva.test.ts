/**
 * The lab's XVA paths (`GET /export`, `PUT /import`) as `xe vm-export` / `xe vm-import` use
 * them: the file checked independently with GNU tar, imported into another pool with the disks
 * equal byte for byte, a round trip through Vates' xen-api client, and the failures an
 * importer reports only in its task.
 */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { request, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { finished, pipeline } from 'node:stream/promises'
import { createClient, type Xapi } from 'xen-api'
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest'
import type { LabSpec } from '../../src/lab/spec.js'
import type { Lab } from '../../src/lab/start.js'
import { xxh64Hex } from '../../src/lab/xva/xxh64.js'
import { labPool, startTempLab } from '../helpers/lab.js'
import { makeTempDir } from '../helpers/tmp.js'
import { awaitTask, login, ok } from './lab-rpc.js'

const MiB = 1024 * 1024
const NET = 'Pool-wide network associated with eth0'

const SPEC: LabSpec = {
  pools: [
    {
      name: 'src',
      hosts: ['src-h1'],
      srs: [{ name: 'Local', type: 'ext' }],
      networks: [{ name: NET }],
      vms: [
        {
          name: 'xva-vm',
          disks: [
            { size: '8 MiB', filled: '3 MiB', seed: 5 },
            { name: 'data', size: '4 MiB', filled: '1 MiB', seed: 6 },
          ],
          networks: [NET],
        },
        { name: 'busy', powerState: 'Running', disks: [{ size: '2 MiB', filled: '1 MiB', seed: 7 }] },
      ],
    },
    // 'Far' is only plugged on dst-h2: the master redirects its transfers there
    {
      name: 'dst',
      hosts: ['dst-h1', 'dst-h2'],
      srs: [
        { name: 'Replica', type: 'ext' },
        { name: 'Far', type: 'ext', host: 'dst-h2' },
      ],
      networks: [{ name: NET }],
    },
  ],
}

let lab: Lab
let tmp: Awaited<ReturnType<typeof makeTempDir>>
const session: Record<string, string> = {}

function pool(name: string): { url: string; user: string; password: string } {
  return labPool(lab, name)
}

beforeAll(async () => {
  lab = await startTempLab(SPEC)
  for (const name of ['src', 'dst']) session[name] = await login(pool(name))
  // a write past the filled region: chunk 6 of disk 0 holds data with zero chunks around it
  await lab.control.writeGuestData('src', lab.control.findVm('src', 'xva-vm')!.vdis[0]!.uuid, [
    { offset: 6 * MiB + 4096, data: Buffer.alloc(8192, 0xab) },
  ])
})
afterAll(async () => {
  await lab?.stop()
})
beforeEach(async () => {
  tmp = await makeTempDir()
})
afterEach(async () => {
  await tmp.remove()
})

/** GET `path` into `file`; resolves with the response headers once the body is written. */
async function download(url: string, path: string, file: string): Promise<IncomingMessage> {
  const response = await new Promise<IncomingMessage>((resolve, reject) =>
    request(new URL(path, url), resolve).on('error', reject).end(),
  )
  await pipeline(response, createWriteStream(file))
  return response
}

/**
 * PUT `file` (or a buffer) to `path` with an exact content-length; resolves with the status once
 * the body went out and the answer ended. An importer that fails closes the connection while we
 * may still be sending (XAPI does the same): the 200 went out first, but a reset can overtake
 * it, and then the status is `undefined` — the outcome is in the task either way.
 */
async function upload(url: string, path: string, body: string | Buffer): Promise<{ status: number | undefined }> {
  const length = typeof body === 'string' ? (await stat(body)).size : body.length
  const req = request(new URL(path, url), { method: 'PUT', headers: { 'content-length': String(length) } })
  const answered = new Promise<IncomingMessage>((resolve, reject) => req.on('response', resolve).on('error', reject))
  answered.catch(() => undefined)
  const reset = (error: unknown): boolean =>
    ['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE'].includes((error as NodeJS.ErrnoException).code ?? '')
  try {
    if (typeof body === 'string') await pipeline(createReadStream(body), req)
    else req.end(body)
  } catch (error) {
    if (!reset(error)) throw error
  }
  let response: IncomingMessage
  try {
    response = await answered
  } catch (error) {
    if (reset(error)) return { status: undefined }
    throw error
  }
  response.resume()
  await finished(response).catch(() => undefined)
  return { status: response.statusCode }
}

async function rawSha(poolName: string, vdi: string): Promise<string> {
  const file = join(tmp.path, `${vdi}.raw`)
  await download(pool(poolName).url, `/export_raw_vdi?session_id=${session[poolName]}&vdi=${vdi}&format=raw`, file)
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex')
}

async function newTask(poolName: string, label: string): Promise<string> {
  return ok<string>(pool(poolName).url, 'task.create', session[poolName], label, '')
}

async function exportSource(
  file: string,
): Promise<{ task: Record<string, unknown>; headers: IncomingMessage['headers'] }> {
  const vm = lab.control.findVm('src', 'xva-vm')!
  const task = await newTask('src', 'export')
  const response = await download(
    pool('src').url,
    `/export?session_id=${session['src']}&task_id=${task}&uuid=${vm.uuid}`,
    file,
  )
  return { task: await awaitTask(pool('src').url, session['src']!, task), headers: response.headers }
}

async function importFile(file: string | Buffer, query = ''): Promise<Record<string, unknown>> {
  const task = await newTask('dst', 'import')
  const sr = (await ok<string[]>(pool('dst').url, 'SR.get_by_name_label', session['dst'], 'Replica'))[0]
  const { status } = await upload(
    pool('dst').url,
    `/import?session_id=${session['dst']}&task_id=${task}&sr_id=${sr}${query}`,
    file,
  )
  const record = await awaitTask(pool('dst').url, session['dst']!, task)
  // a failed import may reset the connection before its 200 is read; a successful one never does
  if (record['status'] === 'success' || status !== undefined) expect(status).toBe(200)
  return record
}

function vmRefsOf(result: unknown): string[] {
  return [...String(result).matchAll(/OpaqueRef:[0-9a-f-]+/g)].map(m => m[0])
}

async function targetCounts(): Promise<{ vms: number; vdis: number }> {
  const vms = await ok<Record<string, unknown>>(pool('dst').url, 'VM.get_all_records', session['dst'])
  const vdis = await ok<string[]>(pool('dst').url, 'VDI.get_all', session['dst'])
  return { vms: Object.keys(vms).length, vdis: vdis.length }
}

async function diskShasOf(poolName: string, vmRef: string): Promise<string[]> {
  const vbds = await ok<string[]>(pool(poolName).url, 'VM.get_VBDs', session[poolName], vmRef)
  const records = await Promise.all(
    vbds.map(vbd => ok<Record<string, string>>(pool(poolName).url, 'VBD.get_record', session[poolName], vbd)),
  )
  const disks = records
    .filter(r => r['type'] === 'Disk')
    .sort((a, b) => Number(a['userdevice']) - Number(b['userdevice']))
  return Promise.all(disks.map(d => rawSha(poolName, d['VDI']!)))
}

async function sourceMac(): Promise<string> {
  const vm = lab.control.findVm('src', 'xva-vm')!
  const vifs = await ok<string[]>(pool('src').url, 'VM.get_VIFs', session['src'], vm.ref)
  return ok<string>(pool('src').url, 'VIF.get_MAC', session['src'], vifs[0])
}

describe('GET /export (XVA)', () => {
  it('writes ova.xml, then per disk its 1 MiB chunks and .xxhash members, zero chunks left out but the first and last', async () => {
    const file = join(tmp.path, 'export.xva')
    const { task, headers } = await exportSource(file)
    expect(task['status']).toBe('success')
    expect(task['result']).toBe('')
    expect(headers['content-type']).toBe('application/octet-stream')
    expect(headers['content-disposition']).toBe('attachment; filename="export.xva"')
    expect(headers['task-id']).toMatch(/^OpaqueRef:/)

    // GNU tar, not our reader: names, sizes, order
    const listing = execFileSync('tar', ['-tvf', file], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map(line => {
        const parts = line.split(/\s+/)
        return { size: Number(parts[2]), name: parts.at(-1)! }
      })
    expect(listing[0]!.name).toBe('ova.xml')
    const chunks = listing.slice(1)
    const disks = [...new Set(chunks.map(c => c.name.split('/')[0]))]
    expect(disks).toHaveLength(2)
    expect(disks).toEqual([...disks].sort())
    const byDisk = new Map(
      disks.map(d => [d, chunks.filter(c => c.name.startsWith(`${d}/`)).map(c => c.name.split('/')[1])]),
    )
    // the 8 MiB disk: filled to 4 MiB (fills round up to 2 MiB blocks), a write in chunk 6 (chunk
    // 4 and 5 are absent, chunk 7 is zero but the last); the 4 MiB disk: 2 MiB filled, chunk 3 last
    const numbers = [...byDisk.values()].map(names => names.filter(n => !n!.endsWith('.xxhash')))
    expect(numbers).toContainEqual(['00000000', '00000001', '00000002', '00000003', '00000006', '00000007'])
    expect(numbers).toContainEqual(['00000000', '00000001', '00000003'])
    for (const [i, entry] of chunks.entries()) {
      if (i % 2 === 0) expect(entry.size).toBe(MiB)
      else expect(entry).toEqual({ name: `${chunks[i - 1]!.name}.xxhash`, size: 16 })
    }

    // every checksum matches its chunk, and every chunk matches the source disk's bytes
    const out = join(tmp.path, 'x')
    execFileSync('mkdir', [out])
    execFileSync('tar', ['-xf', file, '-C', out])
    const vm = lab.control.findVm('src', 'xva-vm')!
    for (const dir of disks) {
      const names = (await readdir(join(out, dir!))).filter(n => !n.endsWith('.xxhash'))
      const eight = names.length === 6
      const vdi = vm.vdis[eight ? 0 : 1]!.uuid
      for (const name of names) {
        const data = await readFile(join(out, dir!, name))
        expect((await readFile(join(out, dir!, `${name}.xxhash`))).toString()).toBe(xxh64Hex(data))
        expect(data.equals(await lab.control.readGuestData('src', vdi, Number(name) * MiB, MiB))).toBe(true)
      }
    }
    const ova = (await readFile(join(out, 'ova.xml'))).toString()
    expect(ova.startsWith('<value><struct><member><name>version</name>')).toBe(true)
    expect(ova).toContain('<member><name>export_vsn</name><value><i4>2</i4></value></member>')
    for (const cls of ['VM', 'VBD', 'VIF', 'network', 'VDI', 'SR'])
      expect(ova).toContain(`<member><name>class</name><value>${cls}</value></member>`)
    // refs inside the records are export ids, never the source pool's refs
    expect(ova).not.toContain(vm.ref)
  })

  it('locks the VM with `export` while the body is being read, and unlocks it after', async () => {
    const vm = lab.control.findVm('src', 'xva-vm')!
    const response = await new Promise<IncomingMessage>((resolve, reject) =>
      request(new URL(`/export?session_id=${session['src']}&ref=${vm.ref}`, pool('src').url), resolve)
        .on('error', reject)
        .end(),
    )
    const during = await ok<Record<string, string>>(
      pool('src').url,
      'VM.get_current_operations',
      session['src'],
      vm.ref,
    )
    expect(Object.values(during)).toEqual(['export'])
    expect(Object.keys(during)).toEqual([response.headers['task-id']])
    response.resume()
    await new Promise<void>(resolve => response.on('end', resolve))
    const task = await awaitTask(pool('src').url, session['src']!, String(response.headers['task-id']))
    expect(task['status']).toBe('success')
    expect(await ok(pool('src').url, 'VM.get_current_operations', session['src'], vm.ref)).toEqual({})
  })

  it('a data-path fault that cuts the body fails the task with VDI_IO_ERROR and unlocks the VM', async () => {
    const vm = lab.control.findVm('src', 'xva-vm')!
    lab.control.injectFault('src', { kind: 'data-path', direction: 'export', cutAfterBytes: 1_500_000, nth: 1 })
    const task = await newTask('src', 'export')
    const file = join(tmp.path, 'cut.xva')
    try {
      await download(
        pool('src').url,
        `/export?session_id=${session['src']}&task_id=${task}&uuid=${vm.uuid}`,
        file,
      ).catch(() => undefined)
    } finally {
      lab.control.clearFaults('src')
    }
    const record = await awaitTask(pool('src').url, session['src']!, task)
    expect(record['error_info']).toEqual(['VDI_IO_ERROR', 'Device I/O errors'])
    expect((await stat(file)).size).toBe(1_500_000)
    expect(await ok(pool('src').url, 'VM.get_current_operations', session['src'], vm.ref)).toEqual({})
  })

  it('refuses a running VM with VM_BAD_POWER_STATE in the task', async () => {
    const vm = lab.control.findVm('src', 'busy')!
    const task = await newTask('src', 'export')
    const response = await download(
      pool('src').url,
      `/export/?session_id=${session['src']}&task_id=${task}&uuid=${vm.uuid}`,
      join(tmp.path, 'busy.xva'),
    )
    expect(response.statusCode).toBe(500)
    const record = await awaitTask(pool('src').url, session['src']!, task)
    expect(record['error_info']).toEqual(['VM_BAD_POWER_STATE', vm.ref, 'halted, suspended', 'running'])
  })
})

describe('PUT /import (XVA)', () => {
  it('creates a halted VM with new uuids whose disks equal the source disks', async () => {
    const file = join(tmp.path, 'export.xva')
    await exportSource(file)
    const before = await targetCounts()
    const task = await importFile(file)
    expect(task['status']).toBe('success')
    expect(String(task['result'])).toMatch(
      /^<value><array><data><value>OpaqueRef:[0-9a-f-]+<\/value><\/data><\/array><\/value>$/,
    )
    const [vmRef] = vmRefsOf(task['result'])
    const vm = await ok<Record<string, unknown>>(pool('dst').url, 'VM.get_record', session['dst'], vmRef)
    const source = lab.control.findVm('src', 'xva-vm')!
    expect(vm['power_state']).toBe('Halted')
    expect(vm['name_label']).toBe('xva-vm')
    expect(vm['uuid']).not.toBe(source.uuid)
    expect(vm['current_operations']).toEqual({})
    expect(await targetCounts()).toEqual({ vms: before.vms + 1, vdis: before.vdis + 2 })

    const vif = await ok<Record<string, string>>(
      pool('dst').url,
      'VIF.get_record',
      session['dst'],
      (vm['VIFs'] as string[])[0],
    )
    expect(await ok(pool('dst').url, 'network.get_name_label', session['dst'], vif['network'])).toBe(NET)
    // the source MAC was made up by the host, so the copy gets one from its own new mac_seed
    expect(vif['MAC']).not.toBe(await sourceMac())
    expect((vm['other_config'] as Record<string, string>)['mac_seed']).not.toBe(
      await ok(pool('src').url, 'VM.get_other_config', session['src'], source.ref).then(
        c => (c as Record<string, string>)['mac_seed'],
      ),
    )

    const sourceShas = await Promise.all(source.vdis.map(v => rawSha('src', v.uuid)))
    expect(await diskShasOf('dst', vmRef!)).toEqual(sourceShas)
  })

  it('fails the task with IMPORT_ERROR after the 200 when a chunk checksum is wrong, and leaves nothing behind', async () => {
    const file = join(tmp.path, 'export.xva')
    await exportSource(file)
    const data = await readFile(file)
    // the first .xxhash member's body: its header names it, the body is the next block
    const header = data.indexOf(Buffer.from('.xxhash\u0000'))
    const body = Math.ceil((header + 1) / 512) * 512
    data[body] = data[body] === 0x30 ? 0x31 : 0x30
    const before = await targetCounts()
    const task = await importFile(data)
    expect(task['status']).toBe('failure')
    const [code, message] = task['error_info'] as string[]
    expect(code).toBe('IMPORT_ERROR')
    expect(message).toMatch(
      /^Block Ref:\d+\/00000000 checksum failed: original = [0-9A-F]{16}; recomputed = [0-9A-F]{16}$/,
    )
    expect(await targetCounts()).toEqual(before)

    // with force the same file imports (XAPI ignores checksum failures then)
    const forced = await importFile(data, '&force=true')
    expect(forced['status']).toBe('success')
  })

  it('fails a short body with IMPORT_ERROR_PREMATURE_EOF and a body that is not an XVA with IMPORT_ERROR_UNEXPECTED_FILE', async () => {
    const file = join(tmp.path, 'export.xva')
    await exportSource(file)
    const data = await readFile(file)
    const before = await targetCounts()
    const short = await importFile(data.subarray(0, data.length - 3 * MiB))
    expect(short['error_info']).toEqual(['IMPORT_ERROR_PREMATURE_EOF'])
    const tarOfOther = join(tmp.path, 'other.tar')
    await writeFile(join(tmp.path, 'README'), 'not a VM')
    execFileSync('tar', ['--format=ustar', '-cf', tarOfOther, '-C', tmp.path, 'README'])
    const other = await importFile(tarOfOther)
    expect(other['error_info']).toEqual(['IMPORT_ERROR_UNEXPECTED_FILE', 'ova.xml', 'README'])
    expect(await targetCounts()).toEqual(before)
  })
})

describe('PUT /import (XVA) interrupted', () => {
  it('a data-path cut ends the import as IMPORT_ERROR_PREMATURE_EOF; a failTask fault fails it after the data; nothing is left of the cut one', async () => {
    const file = join(tmp.path, 'export.xva')
    await exportSource(file)
    const before = await targetCounts()
    lab.control.injectFault('dst', { kind: 'data-path', direction: 'import', cutAfterBytes: 2_500_000, nth: 1 })
    try {
      expect((await importFile(file))['error_info']).toEqual(['IMPORT_ERROR_PREMATURE_EOF'])
    } finally {
      lab.control.clearFaults('dst')
    }
    expect(await targetCounts()).toEqual(before)
    lab.control.injectFault('dst', {
      kind: 'data-path',
      direction: 'import',
      failTask: ['VDI_IO_ERROR', 'Device I/O error'],
      nth: 1,
    })
    try {
      expect((await importFile(file))['error_info']).toEqual(['VDI_IO_ERROR', 'Device I/O error'])
    } finally {
      lab.control.clearFaults('dst')
    }
  })

  it('task.cancel before the body arrives ends the import as TASK_CANCELLED without creating anything', async () => {
    const file = join(tmp.path, 'export.xva')
    await exportSource(file)
    const before = await targetCounts()
    const task = await newTask('dst', 'import')
    const sr = (await ok<string[]>(pool('dst').url, 'SR.get_by_name_label', session['dst'], 'Replica'))[0]
    const size = (await stat(file)).size
    const req = request(new URL(`/import?session_id=${session['dst']}&task_id=${task}&sr_id=${sr}`, pool('dst').url), {
      method: 'PUT',
      headers: { 'content-length': String(size) },
    })
    req.on('error', () => undefined)
    req.flushHeaders()
    // the 200 goes out before a byte of the body is read; only then is the task cancelled
    const response = await new Promise<IncomingMessage>(resolve => req.on('response', resolve))
    expect(response.statusCode).toBe(200)
    response.resume()
    await ok(pool('dst').url, 'task.cancel', session['dst'], task)
    await pipeline(createReadStream(file), req).catch(() => undefined)
    const record = await awaitTask(pool('dst').url, session['dst']!, task)
    expect([record['status'], record['error_info']]).toEqual(['cancelled', ['TASK_CANCELLED', task]])
    expect(await targetCounts()).toEqual(before)
  })
})

describe('XVA options', () => {
  it('gzips with use_compression=true (GNU tar reads it) and imports the gzipped file', async () => {
    const vm = lab.control.findVm('src', 'xva-vm')!
    const file = join(tmp.path, 'export.xva.gz')
    const task = await newTask('src', 'export')
    await download(
      pool('src').url,
      `/export?session_id=${session['src']}&task_id=${task}&uuid=${vm.uuid}&use_compression=true`,
      file,
    )
    expect((await awaitTask(pool('src').url, session['src']!, task))['status']).toBe('success')
    expect((await readFile(file)).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]))
    const names = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).trim().split('\n')
    expect(names[0]).toBe('ova.xml')
    const imported = await importFile(file)
    expect(imported['status']).toBe('success')
    const [ref] = vmRefsOf(imported['result'])
    expect(await diskShasOf('dst', ref!)).toEqual(await Promise.all(vm.vdis.map(v => rawSha('src', v.uuid))))
  })

  it('refuses zstd compression and an HTTP-chunked upload with the task failed, as documented', async () => {
    const vm = lab.control.findVm('src', 'xva-vm')!
    const exportTask = await newTask('src', 'export')
    const refused = await download(
      pool('src').url,
      `/export?session_id=${session['src']}&task_id=${exportTask}&uuid=${vm.uuid}&use_compression=zstd`,
      join(tmp.path, 'z'),
    )
    expect(refused.statusCode).toBe(500)
    expect((await awaitTask(pool('src').url, session['src']!, exportTask))['error_info']).toEqual([
      'INTERNAL_ERROR',
      'The lab cannot compress with zstd: use use_compression=gzip or none',
    ])

    const importTask = await newTask('dst', 'import')
    const sr = (await ok<string[]>(pool('dst').url, 'SR.get_by_name_label', session['dst'], 'Replica'))[0]
    // no content-length: Node sends Transfer-Encoding: chunked, which XAPI's importer refuses
    const req = request(
      new URL(`/import?session_id=${session['dst']}&task_id=${importTask}&sr_id=${sr}`, pool('dst').url),
      { method: 'PUT' },
    )
    req.on('error', () => undefined)
    const answered = new Promise<IncomingMessage>(resolve => req.on('response', resolve))
    // a write before end(): Node cannot know the length, so it frames the body as chunked
    req.write(Buffer.alloc(2048))
    req.end()
    const response = await answered
    response.resume()
    expect(response.statusCode).toBe(403)
    expect((await awaitTask(pool('dst').url, session['dst']!, importTask))['error_info']).toEqual([
      'IMPORT_ERROR_CANNOT_HANDLE_CHUNKED',
    ])
  })

  it('restore=true keeps the VM uuid, and refuses the same export again as not newer', async () => {
    const file = join(tmp.path, 'export.xva')
    await exportSource(file)
    const source = lab.control.findVm('src', 'xva-vm')!
    const first = await importFile(file, '&restore=true')
    expect(first['status']).toBe('success')
    const [ref] = vmRefsOf(first['result'])
    expect(await ok(pool('dst').url, 'VM.get_uuid', session['dst'], ref)).toBe(source.uuid)
    const vifs = await ok<string[]>(pool('dst').url, 'VM.get_VIFs', session['dst'], ref)
    expect(await ok(pool('dst').url, 'VIF.get_MAC', session['dst'], vifs[0])).toBe(await sourceMac())
    const again = await importFile(file, '&restore=true')
    expect(again['error_info']).toEqual(['VM_TO_IMPORT_IS_NOT_NEWER_VERSION', ref, '1', '0'])
    // a snapshot carries its VM's mac_seed under another uuid: restoring it next to the VM would clash
    const snapshot = await ok<string>(pool('src').url, 'VM.snapshot', session['src'], source.ref, 'twin')
    const snapTask = await newTask('src', 'export')
    const snapFile = join(tmp.path, 'twin.xva')
    await download(
      pool('src').url,
      `/export?session_id=${session['src']}&task_id=${snapTask}&ref=${snapshot}`,
      snapFile,
    )
    expect((await importFile(snapFile, '&restore=true'))['error_info']).toEqual(['DUPLICATE_VM', ref])
    await ok(pool('dst').url, 'VM.destroy', session['dst'], ref)
  })

  it('exports a snapshot, which imports as a template (as XAPI: is_a_snapshot is cleared, is_a_template kept)', async () => {
    const vm = lab.control.findVm('src', 'xva-vm')!
    const snapshot = await ok<string>(pool('src').url, 'VM.snapshot', session['src'], vm.ref, 'seed')
    const task = await newTask('src', 'export')
    const file = join(tmp.path, 'snap.xva')
    await download(pool('src').url, `/export?session_id=${session['src']}&task_id=${task}&ref=${snapshot}`, file)
    expect((await awaitTask(pool('src').url, session['src']!, task))['status']).toBe('success')
    const imported = await importFile(file)
    const [ref] = vmRefsOf(imported['result'])
    const record = await ok<Record<string, unknown>>(pool('dst').url, 'VM.get_record', session['dst'], ref)
    expect([record['is_a_snapshot'], record['is_a_template'], record['name_label']]).toEqual([false, true, 'seed'])
  })
})

describe('XVA redirects', () => {
  /** The answer to a request whose body is not sent yet: XAPI redirects before reading it. */
  async function headersOnly(url: URL, method: string): Promise<IncomingMessage> {
    const req = request(url, { method, headers: method === 'PUT' ? { 'content-length': '1000000' } : {} })
    req.on('error', () => undefined)
    req.flushHeaders()
    const response = await new Promise<IncomingMessage>(resolve => req.on('response', resolve))
    response.resume()
    req.destroy()
    return response
  }

  it('PUT /import onto an SR only another host sees is a 302 there (task untouched); so is GET /export of the VM it made', async () => {
    const file = join(tmp.path, 'export.xva')
    await exportSource(file)
    const far = (await ok<string[]>(pool('dst').url, 'SR.get_by_name_label', session['dst'], 'Far'))[0]!
    const task = await newTask('dst', 'import')
    const query = `?session_id=${session['dst']}&task_id=${task}&sr_id=${far}`
    const answer = await headersOnly(new URL(`/import${query}`, pool('dst').url), 'PUT')
    expect(answer.statusCode).toBe(302)
    const location = new URL(String(answer.headers.location))
    const h2 = lab.pools.find(p => p.name === 'dst')!.hosts.find(h => h.name === 'dst-h2')!
    expect(location.host).toBe(new URL(h2.url).host)
    expect(location.pathname + location.search).toBe(`/import${query}`)
    expect(await ok(pool('dst').url, 'task.get_status', session['dst'], task)).toBe('pending')

    const { status } = await upload(h2.url, `/import${query}`, file)
    expect(status).toBe(200)
    const record = await awaitTask(pool('dst').url, session['dst']!, task)
    const [vm] = vmRefsOf(record['result'])
    const exportAnswer = await headersOnly(
      new URL(`/export?session_id=${session['dst']}&ref=${vm}`, pool('dst').url),
      'GET',
    )
    expect(exportAnswer.statusCode).toBe(302)
    expect(new URL(String(exportAnswer.headers.location)).host).toBe(new URL(h2.url).host)
    const back = join(tmp.path, 'back.xva')
    await download(h2.url, `/export?session_id=${session['dst']}&ref=${vm}`, back)
    expect(execFileSync('tar', ['-tf', back], { encoding: 'utf8' }).split('\n')[0]).toBe('ova.xml')
  })
})

/** The parts of the client's HTTP API this test uses (not in our ambient types). */
interface ResourceApi {
  getResource(
    pathname: string,
    options: { query: Record<string, string>; task?: boolean },
  ): Promise<{ statusCode: number; body: Readable; task: Promise<unknown> }>
  putResource(
    body: Readable,
    pathname: string,
    options: { query: Record<string, string>; task?: boolean },
  ): Promise<unknown>
}

describe("XVA through Vates' xen-api client", () => {
  it('getResource(/export) streamed into putResource(/import) gives the imported VM refs and equal disks', async () => {
    const clients = ['src', 'dst'].map(
      name =>
        createClient({
          url: pool(name).url,
          auth: { user: pool(name).user, password: pool(name).password },
          watchEvents: true,
        }) as Xapi & ResourceApi,
    )
    const [source, target] = clients as [Xapi & ResourceApi, Xapi & ResourceApi]
    try {
      await Promise.all(
        clients.map(async c => {
          await c.connect()
          await c.objectsFetched
        }),
      )
      const vm = lab.control.findVm('src', 'xva-vm')!
      const sr = (await ok<string[]>(pool('dst').url, 'SR.get_by_name_label', session['dst'], 'Replica'))[0]!
      const exported = await source.getResource('/export/', { query: { uuid: vm.uuid }, task: true })
      // a stream of unknown length: the client's empty probe PUT, then the 1 PiB content-length
      const result = await target.putResource(exported.body, '/import', { query: { sr_id: sr }, task: true })
      await exported.task
      const refs = vmRefsOf(Array.isArray(result) ? result.join(' ') : String(result))
      expect(refs).toHaveLength(1)
      const sourceShas = await Promise.all(vm.vdis.map(v => rawSha('src', v.uuid)))
      expect(await diskShasOf('dst', refs[0]!)).toEqual(sourceShas)
    } finally {
      await Promise.all(clients.map(c => c.disconnect()))
    }
  })
})
