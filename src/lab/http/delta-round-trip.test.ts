import { createHash, randomUUID } from 'node:crypto'
import { request } from 'node:http'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SESSION, startTempDiskServer, type DiskServer } from '../../../test/helpers/disk-server.js'
import { httpGet } from '../../../test/helpers/http-client.js'
import { readableOf } from '../../../test/helpers/vhd-fixtures.js'
import { readVhd } from '../../vhd/reader.js'
import { guestBlock } from '../storage/guest-data.js'
import { BLOCK_SIZE } from '../storage/types.js'

const MiB = 1024 * 1024

let lab: DiskServer

beforeEach(async () => {
  lab = await startTempDiskServer()
})
afterEach(async () => {
  await lab.close()
})

async function exportOf(query: Record<string, string>): Promise<Buffer> {
  const res = await httpGet(
    `${lab.url}/export_raw_vdi?${new URLSearchParams({ session_id: SESSION, ...query }).toString()}`,
  )
  expect(res.status).toBe(200)
  expect(await lab.waitForTask(res.headers['task-id'] as string)).toMatchObject({ status: 'success' })
  return res.body
}

async function importInto(vdiRef: string, vhd: Buffer): Promise<void> {
  const task = lab.createTask()
  const url = `${lab.url}/import_raw_vdi?${new URLSearchParams({ session_id: SESSION, vdi: vdiRef, format: 'vhd', task_id: task.ref }).toString()}`
  await new Promise<void>((resolve, reject) => {
    const req = request(url, { method: 'PUT', headers: { 'content-length': String(vhd.length) } }, res => {
      res.resume()
      res.on('close', () => resolve())
    })
    req.on('error', reject)
    req.end(vhd)
  })
  expect(await lab.waitForTask(task.ref)).toMatchObject({ status: 'success', result: `<value>${vdiRef}</value>` })
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

describe('delta round trip through the lab data paths', () => {
  it('full copy, then a delta of exactly the changed blocks onto a clone, ends byte-identical', async () => {
    const size = 32 * MiB
    const source = await lab.addVdi(randomUUID(), size)
    await lab.store.fill(source.diskId, { bytes: 20 * MiB, seed: 100 })
    const s1 = randomUUID()
    await lab.store.snapshot(source.diskId, s1)
    const snap1 = lab.register(s1)

    const target = await lab.addVdi(randomUUID(), size)
    await importInto(target.ref, await exportOf({ vdi: snap1.ref, format: 'vhd' }))
    expect(sha256(await exportOf({ vdi: target.ref, format: 'raw' }))).toBe(
      sha256(await exportOf({ vdi: snap1.ref, format: 'raw' })),
    )

    // random blocks change: new data, partial writes, a block rewritten with zeros, one past the fill
    const seed = 20_261_126
    const pick = (n: number): number => (seed * (n + 7) * 2654435761) % (size / BLOCK_SIZE)
    const changed = new Set<number>()
    for (let n = 0; n < 4; n++) {
      const index = pick(n)
      changed.add(index)
      await lab.store.write(source.diskId, index * BLOCK_SIZE, guestBlock(seed, index))
    }
    await lab.store.write(source.diskId, 3 * BLOCK_SIZE + 1000, Buffer.alloc(100, 0xcc))
    await lab.store.write(source.diskId, 5 * BLOCK_SIZE, Buffer.alloc(BLOCK_SIZE))
    await lab.store.write(source.diskId, 14 * BLOCK_SIZE, guestBlock(seed, 14))
    for (const index of [3, 5, 14]) changed.add(index)
    const s2 = randomUUID()
    await lab.store.snapshot(source.diskId, s2)
    const snap2 = lab.register(s2)

    const delta = await exportOf({ vdi: snap2.ref, base: snap1.ref, format: 'vhd' })
    const carried: number[] = []
    for await (const item of readVhd(readableOf(delta))) if (item.kind === 'block') carried.push(item.index)
    expect(carried).toEqual([...changed].sort((a, b) => a - b))

    const replica = randomUUID()
    await lab.store.clone(target.diskId, replica)
    const replicaView = lab.register(replica)
    await importInto(replicaView.ref, delta)
    expect(sha256(await exportOf({ vdi: replicaView.ref, format: 'raw' }))).toBe(
      sha256(await exportOf({ vdi: snap2.ref, format: 'raw' })),
    )
    // the first copy is untouched by the delta applied to its clone
    expect(sha256(await exportOf({ vdi: target.ref, format: 'raw' }))).toBe(
      sha256(await exportOf({ vdi: snap1.ref, format: 'raw' })),
    )
  })
})
