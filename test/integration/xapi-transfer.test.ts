/**
 * Client disk transfers against the lab: full and delta VHD round trips between two pools
 * (checked by sha256 of raw exports), redirects to the host that has the SR, and every way a
 * transfer can go wrong ending in a typed error without a hang.
 */
import { createHash } from 'node:crypto'
import { request } from 'node:http'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AbortedError, UsageError, XapiError, XenCrError } from '../../src/errors.js'
import type { Lab } from '../../src/lab/start.js'
import { XapiClient } from '../../src/xapi/client.js'
import { findSrsByName } from '../../src/xapi/sr.js'
import { createTask, destroyTask, watchTask } from '../../src/xapi/task.js'
import { exportVdi, importVdi, type TransferProgress } from '../../src/xapi/transfer.js'
import type { Ref } from '../../src/xapi/types.js'
import { cloneVdi, createVdi, snapshotVdi } from '../../src/xapi/vdi.js'
import { rawRequest } from '../helpers/http-client.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'

const MiB = 1024 * 1024
const BLOCK = 2 * MiB

let lab: Lab
let src: XapiClient
let dst: XapiClient

function info(name: string): Lab['pools'][number] {
  return labPool(lab, name)
}

function connect(name: string): Promise<XapiClient> {
  return connectLabPool(info(name))
}

async function sr(client: XapiClient, name: string): Promise<Ref<'SR'>> {
  return (await findSrsByName(client, name))[0]!.ref
}

async function vdiOf(client: XapiClient, pool: string, vm: string): Promise<Ref<'VDI'>> {
  return client.getByUuid('VDI', lab.control.findVm(pool, vm)!.vdis[0]!.uuid)
}

/** sha256 of the raw export: what the guest sees, byte for byte. */
async function rawSha(client: XapiClient, vdi: Ref<'VDI'>): Promise<string> {
  const { stream, done } = await exportVdi(client, vdi, { format: 'raw' })
  const hash = createHash('sha256')
  for await (const chunk of stream) hash.update(chunk as Buffer)
  await done
  return hash.digest('hex')
}

/** Export from `from` and import into `to` through the client, as a replication pass does. */
async function copy(
  from: Ref<'VDI'>,
  to: Ref<'VDI'>,
  options: { base?: Ref<'VDI'>; signal?: AbortSignal; onProgress?: (p: TransferProgress) => void } = {},
): Promise<[PromiseSettledResult<{ bytes: number }>, PromiseSettledResult<void>]> {
  const exported = await exportVdi(src, from, {
    format: 'vhd',
    ...(options.base === undefined ? {} : { base: options.base }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  })
  return Promise.all([
    importVdi(dst, to, exported.stream, {
      format: 'vhd',
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
    }).then(
      value => ({ status: 'fulfilled', value }) as const,
      (reason: unknown) => ({ status: 'rejected', reason }) as const,
    ),
    exported.done.then(
      value => ({ status: 'fulfilled', value }) as const,
      (reason: unknown) => ({ status: 'rejected', reason }) as const,
    ),
  ])
}

/** Tasks on both pools: a finished transfer, failed or not, leaves none of its own behind. */
async function taskCount(): Promise<number> {
  return (await src.getAllRecords('task')).size + (await dst.getAllRecords('task')).size
}

async function newTarget(size: number, name: string): Promise<Ref<'VDI'>> {
  return createVdi(dst, { SR: await sr(dst, 'replicas'), virtual_size: size, name_label: name })
}

beforeAll(async () => {
  lab = await startTempLab({
    pools: [
      {
        name: 'src',
        hosts: ['src-h1', 'src-h2'],
        srs: [
          { name: 'shared', shared: true, size: '10 GiB' },
          { name: 'local2', host: 'src-h2', size: '10 GiB' },
        ],
        vms: [
          { name: 'disk-vm', powerState: 'Running', disks: [{ size: '16 MiB', filled: '6 MiB', seed: 11 }] },
          {
            name: 'remote-vm',
            powerState: 'Halted',
            disks: [{ size: '8 MiB', filled: '4 MiB', seed: 12, sr: 'local2' }],
          },
          { name: 'fault-vm', powerState: 'Halted', disks: [{ size: '16 MiB', filled: '16 MiB', seed: 13 }] },
        ],
      },
      { name: 'dst', srs: [{ name: 'replicas', size: '10 GiB' }] },
    ],
  })
  src = await connect('src')
  dst = await connect('dst')
})

afterEach(() => {
  lab.control.clearFaults()
})

afterAll(async () => {
  await src?.close()
  await dst?.close()
  await lab?.stop()
})

describe('round trips', () => {
  it('copies a full export, then a delta onto a clone of the copy, and both read back equal', async () => {
    const tasksBefore = await taskCount()
    const disk = await vdiOf(src, 'src', 'disk-vm')
    const first = await snapshotVdi(src, disk)
    const copy1 = await newTarget(16 * MiB, 'copy 1')
    const [full, fullDone] = await copy(first, copy1)
    expect(full).toMatchObject({ status: 'fulfilled' })
    expect(fullDone).toMatchObject({ status: 'fulfilled' })
    // 6 MiB filled = blocks 0-2; header part is footer copy + header + gap + 512-byte BAT
    expect(full.status === 'fulfilled' && full.value.bytes).toBe(2560 + 3 * (BLOCK + 512) + 512)
    expect(await rawSha(dst, copy1)).toBe(await rawSha(src, first))

    // The VM changes: two blocks rewritten, one zeroed (still a change XAPI must carry).
    const uuid = lab.control.findVm('src', 'disk-vm')!.uuid
    await lab.control.writeGuestData('src', uuid, { blocks: [1, 5], seed: 99 })
    await lab.control.writeGuestData('src', uuid, { blocks: [2], seed: 0, zero: true })
    const second = await snapshotVdi(src, disk)
    const copy2 = await cloneVdi(dst, copy1)
    const progress: TransferProgress[] = []
    const [delta, deltaDone] = await copy(second, copy2, { base: first, onProgress: p => progress.push(p) })
    expect(delta).toMatchObject({ status: 'fulfilled' })
    expect(deltaDone).toMatchObject({ status: 'fulfilled' })
    const deltaBytes = 2560 + 3 * (BLOCK + 512) + 512
    expect(delta.status === 'fulfilled' && delta.value.bytes).toBe(deltaBytes)
    expect(progress.at(-1)).toEqual({ bytes: deltaBytes, total: deltaBytes })
    expect(await rawSha(dst, copy2)).toBe(await rawSha(src, second))
    // the first copy is untouched by the delta landing on its clone
    expect(await rawSha(dst, copy1)).toBe(await rawSha(src, first))
    expect(await taskCount()).toBe(tasksBefore)
  })

  it('follows the redirect to the host that has the SR, for export and for import', async () => {
    const remote = await vdiOf(src, 'src', 'remote-vm')
    // Prove the coordinator does redirect this VDI: a raw GET there answers 302.
    const url = new URL('/export_raw_vdi/', info('src').url)
    url.searchParams.set('session_id', src.sessionId)
    url.searchParams.set('vdi', remote)
    url.searchParams.set('format', 'raw')
    const status = await new Promise<number>((resolve, reject) => {
      request(url, { agent: false }, res => {
        res.destroy()
        resolve(res.statusCode ?? 0)
      })
        .on('error', reject)
        .end()
    })
    expect(status).toBe(302)

    const target = await createVdi(src, { SR: await sr(src, 'local2'), virtual_size: 8 * MiB, name_label: 'on local2' })
    const exportProgress: TransferProgress[] = []
    const exported = await exportVdi(src, remote, { format: 'vhd', onProgress: p => exportProgress.push(p) })
    const { bytes } = await importVdi(src, target, exported.stream, { format: 'vhd' })
    await exported.done
    expect(await rawSha(src, target)).toBe(await rawSha(src, remote))
    // no Content-Length on exports: the total comes from the VHD's own BAT
    expect(exportProgress.at(-1)).toEqual({ bytes, total: bytes })
  })

  it('imports raw with an exact length, and refuses raw without one', async () => {
    const disk = await vdiOf(src, 'src', 'disk-vm')
    const target = await newTarget(16 * MiB, 'raw copy')
    const exported = await exportVdi(src, disk, { format: 'raw' })
    await importVdi(dst, target, exported.stream, { format: 'raw', length: 16 * MiB })
    await exported.done
    expect(await rawSha(dst, target)).toBe(await rawSha(src, disk))
    await expect(importVdi(dst, target, Readable.from([Buffer.alloc(512)]), { format: 'raw' })).rejects.toBeInstanceOf(
      UsageError,
    )
    // a source shorter than the length it announced is reported as the source's fault
    await expect(
      importVdi(dst, target, Readable.from([Buffer.alloc(MiB)]), { format: 'raw', length: 2 * MiB }),
    ).rejects.toMatchObject({
      code: 'SOURCE_LENGTH_MISMATCH',
    })
  })
  it("watches a transfer's task once its bytes are through, not at every step of its progress", async () => {
    // The lab moves an export task's progress as the body is read; a body read slowly (a few
    // seconds) woke a watch begun with the transfer at every step (9 event.from answers here,
    // ~200 for a 2 GiB disk); a watch begun after the last byte needs one.
    const disk = await vdiOf(src, 'src', 'fault-vm')
    lab.control.resetTransferStats('src')
    const { stream, done } = await exportVdi(src, disk, { format: 'raw' })
    let bytes = 0
    await pipeline(
      stream,
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          bytes += chunk.length
          setTimeout(callback, 30)
        },
      }),
    )
    await done
    expect(bytes).toBe(16 * MiB)
    const eventFrom = lab.control.transferStats('src').xapi.byMethod['event.from']?.calls ?? 0
    expect(eventFrom).toBeLessThanOrEqual(3)
  })
})

describe('a length-less import, as real XAPI serves it', () => {
  it('reads the body of a PUT without Content-Length to EOF: every block applied, task VDI_IO_ERROR', async () => {
    const disk = await vdiOf(src, 'src', 'disk-vm')
    const exported = await exportVdi(src, disk, { format: 'vhd' })
    const chunks: Buffer[] = []
    for await (const chunk of exported.stream) chunks.push(chunk as Buffer)
    await exported.done
    const target = await newTarget(16 * MiB, 'length-less')
    const task = await createTask(dst, 'length-less import')
    const query = new URLSearchParams({ session_id: dst.sessionId, vdi: target, format: 'vhd', task_id: task })
    const reply = await rawRequest(
      info('dst').url,
      `PUT /import_raw_vdi?${query.toString()} HTTP/1.1\r\nHost: lab\r\n\r\n`,
      Buffer.concat(chunks),
    )
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    // XAPI looks for the trailing footer at the VDI size, past the end of this 6 MiB body
    expect(await watchTask(dst, task)).toMatchObject({
      status: 'failure',
      error_info: ['VDI_IO_ERROR', 'Device I/O errors'],
    })
    expect(await rawSha(dst, target)).toBe(await rawSha(src, disk))
    await destroyTask(dst, task)
  })
})

describe('failures', () => {
  it("reports a refused export with the server's reason, and leaves no task behind", async () => {
    const tasksBefore = (await src.getAllRecords('task')).size
    const bogus = 'OpaqueRef:00000000-0000-0000-0000-0000000000ff' as Ref<'VDI'>
    const error = await exportVdi(src, bogus, { format: 'vhd' }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'XAPI_HANDLE_INVALID', params: ['VDI', bogus] })
    expect((await src.getAllRecords('task')).size).toBe(tasksBefore)
  })

  it('fails an export whose task fails after every byte was sent', async () => {
    const tasksBefore = await taskCount()
    const disk = await vdiOf(src, 'src', 'fault-vm')
    lab.control.injectFault('src', {
      kind: 'data-path',
      direction: 'export',
      failTask: ['VDI_IO_ERROR', 'Device I/O errors'],
    })
    const { stream, done } = await exportVdi(src, disk, { format: 'raw' })
    let bytes = 0
    await pipeline(stream, new Writable({ write: (chunk: Buffer, _e, cb) => ((bytes += chunk.length), cb()) }))
    expect(bytes).toBe(16 * MiB)
    const error = await done.catch((e: unknown) => e)
    expect(error).toBeInstanceOf(XapiError)
    expect(error).toMatchObject({ xapiCode: 'VDI_IO_ERROR', params: ['Device I/O errors'] })
    expect(await taskCount()).toBe(tasksBefore)
  })

  it('fails an import whose task fails after every byte was received', async () => {
    const tasksBefore = await taskCount()
    const disk = await vdiOf(src, 'src', 'fault-vm')
    lab.control.injectFault('dst', {
      kind: 'data-path',
      direction: 'import',
      failTask: ['VDI_IO_ERROR', 'Device I/O errors'],
    })
    const [imported, exported] = await copy(disk, await newTarget(16 * MiB, 'failed task'))
    expect(imported).toMatchObject({
      status: 'rejected',
      reason: { xapiCode: 'VDI_IO_ERROR', params: ['Device I/O errors'] },
    })
    expect(exported).toMatchObject({ status: 'fulfilled' })
    expect(await taskCount()).toBe(tasksBefore)
  })

  it('fails both sides with typed errors when the export is cut mid-stream', async () => {
    const tasksBefore = await taskCount()
    const disk = await vdiOf(src, 'src', 'fault-vm')
    lab.control.injectFault('src', { kind: 'data-path', direction: 'export', cutAfterBytes: 3 * MiB + 100 })
    const [imported, exported] = await copy(disk, await newTarget(16 * MiB, 'cut export'))
    expect(imported.status).toBe('rejected')
    expect(exported.status).toBe('rejected')
    expect(imported.status === 'rejected' && imported.reason).toBeInstanceOf(XenCrError)
    expect(exported.status === 'rejected' && exported.reason).toBeInstanceOf(XenCrError)
    expect(await taskCount()).toBe(tasksBefore)
  })

  it('fails both sides with typed errors when the import connection is cut', async () => {
    const tasksBefore = await taskCount()
    const disk = await vdiOf(src, 'src', 'fault-vm')
    lab.control.injectFault('dst', { kind: 'data-path', direction: 'import', cutAfterBytes: MiB })
    const [imported, exported] = await copy(disk, await newTarget(16 * MiB, 'cut import'))
    expect(imported.status === 'rejected' && imported.reason).toBeInstanceOf(XenCrError)
    expect(exported.status === 'rejected' && exported.reason).toBeInstanceOf(XenCrError)
    expect(await taskCount()).toBe(tasksBefore)
  })

  it('aborts a throttled transfer on both sides through one signal', async () => {
    const disk = await vdiOf(src, 'src', 'fault-vm')
    lab.control.injectFault('src', { kind: 'data-path', direction: 'export', bytesPerSecond: 2 * MiB })
    const controller = new AbortController()
    const [imported, exported] = await copy(disk, await newTarget(16 * MiB, 'aborted'), {
      signal: controller.signal,
      onProgress: () => controller.abort(),
    })
    expect(imported.status === 'rejected' && imported.reason).toBeInstanceOf(AbortedError)
    expect(exported.status === 'rejected' && exported.reason).toBeInstanceOf(AbortedError)
  })
})
