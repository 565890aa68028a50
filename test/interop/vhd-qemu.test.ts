/**
 * qemu-img as an independent VHD implementation: every VHD our writer, normaliser and the
 * lab's export produce must open in qemu-img as VHD and convert to exactly the raw content, and a
 * VHD qemu made must read back and import equal.
 */
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { startDiskServer, SESSION } from '../helpers/disk-server.js'
import { httpGet, rawRequest } from '../helpers/http-client.js'
import { makeTempDir } from '../helpers/tmp.js'
import { collect, readableOf } from '../helpers/vhd-fixtures.js'
import { guestBlock } from '../../src/lab/storage/guest-data.js'
import { BLOCK_SIZE } from '../../src/lab/storage/types.js'
import { decodeFooter, encodeFooter } from '../../src/vhd/footer.js'
import { normaliseVhd } from '../../src/vhd/normalise.js'
import { readVhd } from '../../src/vhd/reader.js'
import { createVhdStream } from '../../src/vhd/writer.js'

const run = promisify(execFile)
const MiB = 1024 * 1024

let tmp: Awaited<ReturnType<typeof makeTempDir>>
let lab: Awaited<ReturnType<typeof startDiskServer>>

beforeEach(async () => {
  tmp = await makeTempDir()
  lab = await startDiskServer(join(tmp.path))
})
afterEach(async () => {
  await lab.close()
  await tmp.remove()
})

/**
 * The raw content as qemu reads it, after qemu opened the file as VHD with the footer's size
 * and said nothing on stderr (qemu-img 7.2 has no `check` for the vpc driver, so opening it
 * with `info` and reading every block with `convert` is the check). qemu sizes a VHD from its
 * CHS geometry for creators it does not know (ours is `caml`, like vhd-tool's);
 * `force_size_calc=current_size` makes it use the footer's size, as XAPI does.
 */
async function qemuRaw(vhd: Buffer, name: string): Promise<Buffer> {
  const file = join(tmp.path, `${name}.vhd`)
  const raw = join(tmp.path, `${name}.raw`)
  await writeFile(file, vhd)
  const opts = `driver=vpc,force_size_calc=current_size,file.filename=${file}`
  const info = await run('qemu-img', ['info', '--output=json', '--image-opts', opts])
  expect(info.stderr).toBe('')
  const current = decodeFooter(vhd.subarray(0, 512), 0).currentSize
  expect(JSON.parse(info.stdout)).toMatchObject({ format: 'vpc', 'virtual-size': current })
  const converted = await run('qemu-img', ['convert', '--image-opts', opts, '-O', 'raw', raw])
  expect(converted.stderr).toBe('')
  return readFile(raw)
}

/** A differencing VHD relabelled dynamic (qemu does not open differencing VHDs): same layout. */
function asDynamic(vhd: Buffer): Buffer {
  const copy = Buffer.from(vhd)
  const footer = encodeFooter({ ...decodeFooter(copy.subarray(0, 512), 0), diskType: 3 })
  footer.copy(copy, 0)
  footer.copy(copy, copy.length - 512)
  // the header's parent fields mean nothing to a dynamic disk but are harmless to qemu
  return copy
}

function exportUrl(query: Record<string, string>): string {
  return `${lab.url}/export_raw_vdi?${new URLSearchParams({ session_id: SESSION, ...query }).toString()}`
}

describe('VHD interop with qemu-img', () => {
  it('the writer output opens in qemu-img and converts to the exact raw content', async () => {
    const virtualSize = 7 * MiB + 4096 // the last block is partial
    const blocks = [0, 3]
    const { length, stream } = createVhdStream({
      virtualSize,
      diskType: 'dynamic',
      blocks,
      readBlock: async i => guestBlock(11, i),
    })
    const vhd = await collect(stream)
    expect(vhd.length).toBe(length)
    const expected = Buffer.alloc(virtualSize)
    guestBlock(11, 0).copy(expected, 0)
    guestBlock(11, 3).copy(expected, 3 * BLOCK_SIZE, 0, virtualSize - 3 * BLOCK_SIZE)
    const raw = await qemuRaw(vhd, 'written')
    expect(raw.length).toBe(virtualSize)
    expect(raw.equals(expected)).toBe(true)
  })

  it('every lab export (full and delta) opens in qemu-img and converts equal to the lab raw export', async () => {
    const vm = await lab.addVdi(randomUUID(), 24 * MiB)
    await lab.store.fill(vm.diskId, { bytes: 10 * MiB, seed: 21 })
    const s1 = randomUUID()
    await lab.store.snapshot(vm.diskId, s1)
    await lab.store.write(vm.diskId, 2 * BLOCK_SIZE + 4096, guestBlock(22, 0).subarray(0, 8192))
    await lab.store.write(vm.diskId, 9 * BLOCK_SIZE, Buffer.alloc(BLOCK_SIZE)) // rewritten with zeros
    await lab.store.write(vm.diskId, 11 * BLOCK_SIZE, guestBlock(23, 0))
    const s2 = randomUUID()
    await lab.store.snapshot(vm.diskId, s2)
    const base = lab.register(s1)
    const top = lab.register(s2)

    const rawExport = await httpGet(exportUrl({ vdi: top.ref, format: 'raw' }))
    expect(rawExport.body.length).toBe(24 * MiB)
    const full = await httpGet(exportUrl({ vdi: top.ref, format: 'vhd' }))
    expect((await qemuRaw(full.body, 'full')).equals(rawExport.body)).toBe(true)

    // the delta carries exactly the changed blocks; as a dynamic disk it reads as those blocks
    // over zeros, which is the lab's raw export with the same base
    const delta = await httpGet(exportUrl({ vdi: top.ref, base: base.ref, format: 'vhd' }))
    const rawDelta = await httpGet(exportUrl({ vdi: top.ref, base: base.ref, format: 'raw' }))
    const kinds: number[] = []
    for await (const item of readVhd(readableOf(delta.body))) if (item.kind === 'block') kinds.push(item.index)
    expect(kinds).toEqual([2, 9, 11])
    expect((await qemuRaw(asDynamic(delta.body), 'delta')).equals(rawDelta.body)).toBe(true)
  })

  it('a dynamic VHD made by qemu-img reads back equal, normalises to a VHD qemu accepts, and imports into a lab VDI equal', async () => {
    const size = 10 * MiB
    const content = Buffer.alloc(size)
    guestBlock(31, 0).copy(content, 0)
    guestBlock(31, 3).copy(content, 3 * BLOCK_SIZE + 512, 0, MiB) // a block only partly written
    const rawFile = join(tmp.path, 'source.raw')
    const vhdFile = join(tmp.path, 'qemu.vhd')
    await writeFile(rawFile, content)
    await run('qemu-img', [
      'convert',
      '-f',
      'raw',
      '-O',
      'vpc',
      '-o',
      'subformat=dynamic,force_size=on',
      rawFile,
      vhdFile,
    ])
    const qemuVhd = await readFile(vhdFile)

    // read back
    const rebuilt = Buffer.alloc(size)
    let blockSize = 0
    for await (const item of readVhd(readableOf(qemuVhd))) {
      if (item.kind === 'header') blockSize = item.header.blockSize
      if (item.kind !== 'block') continue
      for (let s = 0; s < blockSize / 512; s++) {
        if ((((item.bitmap[s >> 3] as number) >> (7 - (s & 7))) & 1) === 1)
          item.data.copy(rebuilt, item.index * blockSize + s * 512, s * 512, (s + 1) * 512)
      }
    }
    expect(rebuilt.equals(content)).toBe(true)

    // normalised, it is still the same disk to qemu
    const normalised = await normaliseVhd(readableOf(qemuVhd))
    const normalisedBytes = await collect(normalised.stream)
    expect(normalisedBytes.length).toBe(normalised.length)
    expect((await qemuRaw(normalisedBytes, 'normalised')).equals(content)).toBe(true)

    // imported into a lab VDI that held other data, with the exact normalised length
    const vdi = await lab.addVdi(randomUUID(), size)
    const task = lab.createTask()
    const head = `PUT /import_raw_vdi?${new URLSearchParams({ session_id: SESSION, vdi: vdi.ref, format: 'vhd', task_id: task.ref }).toString()} HTTP/1.1\r\nHost: lab\r\nContent-Length: ${qemuVhd.length}\r\n\r\n`
    await rawRequest(lab.url, head, qemuVhd)
    expect(await lab.waitForTask(task.ref)).toMatchObject({ status: 'success' })
    const exported = await httpGet(exportUrl({ vdi: vdi.ref, format: 'raw' }))
    expect(exported.body.equals(content)).toBe(true)
  })
})
