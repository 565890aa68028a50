import { randomUUID } from 'node:crypto'
import { request } from 'node:http'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SESSION, startTempDiskServer, type DiskServer } from '../../../test/helpers/disk-server.js'
import { httpGet } from '../../../test/helpers/http-client.js'
import { readableOf } from '../../../test/helpers/vhd-fixtures.js'
import { readVhd } from '../../vhd/reader.js'
import type { VhdItem } from '../../vhd/reader.js'
import { BLOCK_SIZE } from '../storage/types.js'

const MiB = 1024 * 1024

let lab: DiskServer

beforeEach(async () => {
  lab = await startTempDiskServer()
})
afterEach(async () => {
  await lab.close()
})

function exportUrl(query: Record<string, string>, path = '/export_raw_vdi'): string {
  return `${lab.url}${path}?${new URLSearchParams({ session_id: SESSION, ...query }).toString()}`
}

async function vhdItems(body: Buffer): Promise<VhdItem[]> {
  const items: VhdItem[] = []
  for await (const item of readVhd(readableOf(body))) items.push(item)
  return items
}

describe('GET /export_raw_vdi', () => {
  it('sends virtual_size raw bytes with XAPI headers and completes the task with "" after them', async () => {
    const vdi = await lab.addVdi(randomUUID(), 5 * MiB)
    await lab.store.fill(vdi.diskId, { bytes: 2 * MiB, seed: 3 })
    await lab.store.write(vdi.diskId, 4 * MiB + 7, Buffer.from('tail'))
    const task = lab.createTask()
    const res = await httpGet(exportUrl({ vdi: vdi.ref, format: 'raw', task_id: task.ref }))
    expect(res.status).toBe(200)
    expect(res.headers).toMatchObject({
      connection: 'close',
      'cache-control': 'no-cache, no-store',
      'task-id': task.ref,
      'content-type': 'application/octet-stream',
      'content-disposition': `attachment; filename="${vdi.uuid}.raw"`,
    })
    expect(res.headers['content-length']).toBeUndefined()
    expect(res.headers['transfer-encoding']).toBeUndefined()
    expect(res.body.equals(await lab.store.read(vdi.diskId, 0, 5 * MiB))).toBe(true)
    expect(await lab.waitForTask(task.ref)).toMatchObject({ status: 'success', result: '', progress: 1 })
  })

  it('sends a dynamic VHD of every block allocated in the chain, by uuid and with a trailing slash', async () => {
    const vdi = await lab.addVdi(randomUUID(), 9 * MiB)
    await lab.store.write(vdi.diskId, 0, Buffer.alloc(10, 1))
    await lab.store.snapshot(vdi.diskId, randomUUID())
    await lab.store.write(vdi.diskId, 3 * BLOCK_SIZE, Buffer.alloc(BLOCK_SIZE)) // allocated zeros count too
    const res = await httpGet(exportUrl({ vdi: vdi.uuid, format: 'vhd' }, '/export_raw_vdi/'))
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toBe('application/vhd')
    const items = await vhdItems(res.body)
    const footer = items[0] as Extract<VhdItem, { kind: 'footer' }>
    expect(footer.footer).toMatchObject({ diskType: 3, currentSize: 9 * MiB })
    const blocks = items.filter((item): item is Extract<VhdItem, { kind: 'block' }> => item.kind === 'block')
    expect(blocks.map(b => b.index)).toEqual([0, 3])
    expect(blocks[0]?.data.equals(await lab.store.readBlock(vdi.diskId, 0))).toBe(true)
    expect(blocks.every(b => b.bitmap.equals(Buffer.alloc(512, 0xff)))).toBe(true)
    // a task the server made itself is named in the header and completed too
    expect(await lab.waitForTask(res.headers['task-id'] as string)).toMatchObject({
      status: 'success',
      label: 'Exporting raw VDI',
    })
  })

  it('with base sends a differencing VHD of exactly the changed blocks, whole', async () => {
    const vm = await lab.addVdi(randomUUID(), 20 * MiB)
    await lab.store.fill(vm.diskId, { bytes: 8 * MiB, seed: 1 })
    const s1 = randomUUID()
    await lab.store.snapshot(vm.diskId, s1)
    await lab.store.write(vm.diskId, 1 * BLOCK_SIZE + 512, Buffer.alloc(512, 9))
    await lab.store.write(vm.diskId, 6 * BLOCK_SIZE, Buffer.alloc(BLOCK_SIZE))
    const s2 = randomUUID()
    await lab.store.snapshot(vm.diskId, s2)
    const base = lab.register(s1)
    const top = lab.register(s2)
    const res = await httpGet(exportUrl({ vdi: top.ref, base: base.uuid, format: 'vhd' }))
    const items = await vhdItems(res.body)
    const footer = (items[0] as Extract<VhdItem, { kind: 'footer' }>).footer
    expect(footer.diskType).toBe(4)
    const header = (items[1] as Extract<VhdItem, { kind: 'header' }>).header
    expect(header.parentUnicodeName).toContain(lab.store.info(s1)?.layers.at(-1))
    const blocks = items.filter((item): item is Extract<VhdItem, { kind: 'block' }> => item.kind === 'block')
    expect(blocks.map(b => b.index)).toEqual([1, 6])
    expect(blocks[0]?.data.equals(await lab.store.readBlock(s2, 1))).toBe(true)
    expect(blocks[1]?.data.equals(Buffer.alloc(BLOCK_SIZE))).toBe(true)
  })

  it('answers 401 without a session, accepts HTTP Basic and releases its temporary session', async () => {
    const vdi = await lab.addVdi(randomUUID(), 2 * MiB)
    const denied = await httpGet(`${lab.url}/export_raw_vdi?vdi=${vdi.ref}`)
    expect(denied.status).toBe(401)
    expect(denied.headers['www-authenticate']).toMatch(/^Basic realm=/)
    const basic = await httpGet(`${lab.url}/export_raw_vdi?vdi=${vdi.ref}`, {
      Authorization: `Basic ${Buffer.from('root:secret').toString('base64')}`,
    })
    expect(basic.status).toBe(200)
    expect(basic.body.length).toBe(2 * MiB)
    expect(lab.releases.count).toBe(1)
  })

  it('refuses an unknown format with 404 and fails the task with INTERNAL_ERROR', async () => {
    const vdi = await lab.addVdi(randomUUID(), 2 * MiB)
    const task = lab.createTask()
    const res = await httpGet(exportUrl({ vdi: vdi.ref, format: 'vmdk', task_id: task.ref }))
    expect(res.status).toBe(404)
    expect(task).toMatchObject({ status: 'failure', error: ['INTERNAL_ERROR', 'Unknown format vmdk'] })
    const unknown = await httpGet(exportUrl({ vdi: 'OpaqueRef:nope' }))
    expect(unknown.status).toBe(404)
  })

  it('redirects to the host that reaches the SR with the same path and query, leaving the task alone', async () => {
    const vdi = await lab.addVdi(randomUUID(), 2 * MiB)
    lab.redirects.set(vdi.uuid, 'http://127.0.0.9:4321')
    const task = lab.createTask()
    const query = { vdi: vdi.ref, format: 'vhd', task_id: task.ref }
    const res = await httpGet(exportUrl(query, '/export_raw_vdi/'))
    expect(res.status).toBe(302)
    expect(res.headers.location).toBe(
      `http://127.0.0.9:4321/export_raw_vdi/?${new URLSearchParams({ session_id: SESSION, ...query }).toString()}`,
    )
    expect(task.status).toBe('pending')
  })

  it('honours the data-path faults: a cut after N bytes, a failed task, a throttle', async () => {
    const vdi = await lab.addVdi(randomUUID(), 4 * MiB)
    await lab.store.fill(vdi.diskId, { bytes: 4 * MiB, seed: 2 })
    const content = await lab.store.read(vdi.diskId, 0, 4 * MiB)

    lab.faults.push({ kind: 'export', fault: { cutAfterBytes: 1_000_003 } })
    const cut = await httpGet(exportUrl({ vdi: vdi.ref }))
    expect(cut.body.length).toBe(1_000_003)
    expect(cut.body.equals(content.subarray(0, 1_000_003))).toBe(true)
    expect(await lab.waitForTask(cut.headers['task-id'] as string)).toMatchObject({
      status: 'failure',
      error: ['VDI_IO_ERROR', 'Device I/O errors'],
    })

    lab.faults.push({ kind: 'export', fault: { failTask: ['VDI_IO_ERROR', 'Device I/O errors'] } })
    const failed = await httpGet(exportUrl({ vdi: vdi.ref }))
    expect(failed.body.equals(content)).toBe(true)
    expect(await lab.waitForTask(failed.headers['task-id'] as string)).toMatchObject({
      status: 'failure',
      error: ['VDI_IO_ERROR', 'Device I/O errors'],
    })

    lab.faults.push({ kind: 'export', fault: { bytesPerSecond: 64 * MiB } })
    const slow = await httpGet(exportUrl({ vdi: vdi.ref }))
    expect(slow.body.equals(content)).toBe(true)
    expect(await lab.waitForTask(slow.headers['task-id'] as string)).toMatchObject({ status: 'success' })
  })

  it('stops and fails the task with TASK_CANCELLED once task.cancel was called', async () => {
    const vdi = await lab.addVdi(randomUUID(), 8 * MiB)
    await lab.store.fill(vdi.diskId, { bytes: 8 * MiB, seed: 6 })
    const task = lab.createTask()
    lab.faults.push({ kind: 'export', fault: { bytesPerSecond: 2 * MiB } })
    const received = await new Promise<number>((resolve, reject) => {
      const req = request(exportUrl({ vdi: vdi.ref, task_id: task.ref }), res => {
        let bytes = 0
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length
          task.cancelRequested = true
        })
        res.on('error', () => undefined)
        res.on('close', () => resolve(bytes))
      })
      req.on('error', reject)
      req.end()
    })
    expect(received).toBeLessThan(8 * MiB)
    expect(await lab.waitForTask(task.ref)).toMatchObject({ status: 'failure', error: ['TASK_CANCELLED', task.ref] })
  })

  it('fails the task with VDI_IO_ERROR when the client goes away mid-body', async () => {
    const vdi = await lab.addVdi(randomUUID(), 64 * MiB)
    await lab.store.fill(vdi.diskId, { bytes: 64 * MiB, seed: 5 })
    const task = lab.createTask()
    await new Promise<void>((resolve, reject) => {
      const req = request(exportUrl({ vdi: vdi.ref, task_id: task.ref }), res => {
        res.once('data', () => {
          res.destroy()
          resolve()
        })
      })
      req.on('error', reject)
      req.end()
    })
    expect(await lab.waitForTask(task.ref)).toMatchObject({
      status: 'failure',
      error: ['VDI_IO_ERROR', 'Device I/O errors'],
    })
  })
})
