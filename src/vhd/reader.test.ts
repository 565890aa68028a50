import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { chunked, collect, handVhd } from '../../test/helpers/vhd-fixtures.js'
import { VhdError } from '../errors.js'
import { encodeFooter } from './footer.js'
import { decodeFooter } from './footer.js'
import { VHD_BLOCK_SIZE } from './layout.js'
import { readVhd } from './reader.js'
import type { VhdItem } from './reader.js'
import { createVhdStream } from './writer.js'

const MiB = 1024 * 1024

function blockOf(index: number): Buffer {
  const block = Buffer.alloc(VHD_BLOCK_SIZE)
  for (let i = 0; i < block.length; i += 4096) block.writeUInt32BE(index * 1_000_003 + i, i)
  return block
}

async function written(virtualSize: number, blocks: number[]): Promise<Buffer> {
  const { length, stream } = createVhdStream({
    virtualSize,
    diskType: 'dynamic',
    blocks,
    readBlock: async i => blockOf(i),
  })
  const bytes = await collect(stream)
  expect(bytes.length).toBe(length)
  return bytes
}

async function items(source: AsyncIterable<Buffer>): Promise<VhdItem[]> {
  const out: VhdItem[] = []
  for await (const item of readVhd(source)) out.push(item)
  return out
}

async function failure(source: AsyncIterable<Buffer>): Promise<VhdError> {
  try {
    for await (const item of readVhd(source)) void item
  } catch (error) {
    expect(error).toBeInstanceOf(VhdError)
    return error as VhdError
  }
  throw new Error('the reader accepted a bad VHD')
}

describe('readVhd', () => {
  it('yields footer, header, BAT, blocks and end of a written VHD, even from 1-byte chunks', async () => {
    const bytes = await written(5 * MiB, [1])
    const got = await items(chunked(bytes, 1))
    expect(got.map(item => item.kind)).toEqual(['footer', 'header', 'bat', 'block', 'end'])
    const block = got[3] as Extract<VhdItem, { kind: 'block' }>
    expect(block.index).toBe(1)
    expect(block.bitmap.equals(Buffer.alloc(512, 0xff))).toBe(true)
    expect(block.data.equals(blockOf(1))).toBe(true)
    const bat = (got[2] as Extract<VhdItem, { kind: 'bat' }>).bat
    expect([...bat]).toEqual([0xffffffff, 2560 / 512, 0xffffffff])
  })

  it('yields blocks in file order, skipping gaps, with partial bitmaps as stored', async () => {
    const bitmap = Buffer.alloc(512)
    bitmap[0] = 0x80
    const bytes = handVhd({
      virtualSize: 8 * MiB,
      headerOffset: 1024,
      tableOffset: 4096,
      blocks: [
        { index: 3, offset: 8192, data: blockOf(3) },
        { index: 0, offset: 8192 + 512 + VHD_BLOCK_SIZE + 4096, bitmap, data: blockOf(0) },
      ],
      gapBeforeFooter: 1536,
    })
    const got = (await items(chunked(bytes, 7000))).filter(item => item.kind === 'block')
    expect(got.map(item => item.index)).toEqual([3, 0])
    expect(got[1]?.bitmap.equals(bitmap)).toBe(true)
    expect(got[0]?.data.equals(blockOf(3))).toBe(true)
  })

  it('reports a truncation at every structural boundary as VHD_TRUNCATED with the end offset', async () => {
    const bytes = await written(6 * MiB, [0, 2])
    const block0 = 2048 + 512
    const block2 = block0 + 512 + VHD_BLOCK_SIZE
    const cuts = [
      0,
      1,
      511,
      512,
      513,
      1535,
      1536,
      2047,
      2048,
      2050,
      block0,
      block0 + 100,
      block0 + 512,
      block0 + 512 + MiB,
      block2,
      block2 + 512 + VHD_BLOCK_SIZE,
      bytes.length - 1,
    ]
    for (const cut of cuts) {
      const error = await failure(chunked(bytes.subarray(0, cut), 64 * 1024))
      expect({ cut, code: error.code }).toEqual({ cut, code: 'VHD_TRUNCATED' })
      expect(error.offset).toBeLessThanOrEqual(cut)
      expect(error.offset).toBeGreaterThanOrEqual(Math.min(cut, block2 + 512 + VHD_BLOCK_SIZE))
    }
  })

  it('names an HTML error page as not a VHD instead of waiting for more', async () => {
    const page = Buffer.from('<html><body><h1>HTTP 500 internal server error</h1></body></html>')
    const error = await failure(chunked(page, 1))
    expect(error.code).toBe('VHD_BAD_COOKIE')
    expect(error.offset).toBe(0)
    expect(error.message).toContain('<html>')
  })

  it('refuses bad checksums, versions, types, block sizes and header data offsets', async () => {
    const good = await written(4 * MiB, [0])
    const cases: { name: string; bytes: Buffer; code: string; offset: number }[] = []
    const badFooterSum = Buffer.from(good)
    badFooterSum[100] = 1
    cases.push({ name: 'footer checksum', bytes: badFooterSum, code: 'VHD_BAD_CHECKSUM', offset: 64 })
    const badHeaderSum = Buffer.from(good)
    badHeaderSum[512 + 600] = 1
    cases.push({ name: 'header checksum', bytes: badHeaderSum, code: 'VHD_BAD_CHECKSUM', offset: 512 + 36 })
    cases.push({
      name: 'version',
      bytes: handVhd({ virtualSize: 4 * MiB, footer: { fileFormatVersion: 0x20000 } }),
      code: 'VHD_BAD_VERSION',
      offset: 12,
    })
    cases.push({
      name: 'header version',
      bytes: handVhd({ virtualSize: 4 * MiB, header: { headerVersion: 2 } }),
      code: 'VHD_BAD_VERSION',
      offset: 512 + 24,
    })
    cases.push({
      name: 'fixed',
      bytes: handVhd({ virtualSize: 4 * MiB, diskType: 2 }),
      code: 'VHD_UNSUPPORTED_TYPE',
      offset: 60,
    })
    cases.push({
      name: 'block size 3 MiB',
      bytes: handVhd({ virtualSize: 4 * MiB, header: { blockSize: 3 * MiB } }),
      code: 'VHD_BAD_BLOCK_SIZE',
      offset: 512 + 32,
    })
    cases.push({
      name: 'block size 4 MiB',
      bytes: handVhd({ virtualSize: 4 * MiB, header: { blockSize: 4 * MiB } }),
      code: 'VHD_BAD_BLOCK_SIZE',
      offset: 512 + 32,
    })
    cases.push({
      name: 'header data offset',
      bytes: handVhd({ virtualSize: 4 * MiB, header: { dataOffset: 0 } }),
      code: 'VHD_BAD_HEADER',
      offset: 512 + 8,
    })
    cases.push({
      name: 'BAT behind header',
      bytes: handVhd({ virtualSize: 4 * MiB, tableOffset: 2048, header: { tableOffset: 1024 } }),
      code: 'VHD_BAD_HEADER',
      offset: 512 + 16,
    })
    cases.push({
      name: 'bad header cookie',
      bytes: handVhd({ virtualSize: 4 * MiB, header: { cookie: 'cxsparsX' } }),
      code: 'VHD_BAD_COOKIE',
      offset: 512,
    })
    for (const { name, bytes, code, offset } of cases) {
      const error = await failure(chunked(bytes, 4096))
      expect({ name, code: error.code, offset: error.offset }).toEqual({ name, code, offset })
    }
  })

  it('refuses BAT entries out of range and overlapping blocks', async () => {
    const data = blockOf(0)
    // block 1 pointing at the BAT's own sector
    const intoBat = handVhd({ virtualSize: 4 * MiB })
    intoBat.writeUInt32BE(2048 / 512, 2048 + 4)
    expect(await failure(chunked(intoBat, 4096))).toMatchObject({ code: 'VHD_BAT_OUT_OF_RANGE', offset: 2048 + 4 })
    const beyondSize = handVhd({
      virtualSize: 4 * MiB,
      header: { maxTableEntries: 4 },
      blocks: [{ index: 3, offset: 4096, data }],
    })
    expect(await failure(chunked(beyondSize, 4096))).toMatchObject({ code: 'VHD_BAT_OUT_OF_RANGE', offset: 2048 + 12 })
    const overlap = handVhd({
      virtualSize: 4 * MiB,
      blocks: [
        { index: 0, offset: 2560, data },
        { index: 1, offset: 2560 + 1024, data },
      ],
    })
    expect(await failure(chunked(overlap, 4096))).toMatchObject({ code: 'VHD_BLOCK_OVERLAP', offset: 2048 + 4 })
  })

  it('refuses a trailing footer that differs from the leading copy', async () => {
    const bytes = Buffer.from(await written(4 * MiB, [1]))
    const trailing = decodeFooter(bytes.subarray(bytes.length - 512), 0)
    encodeFooter({ ...trailing, currentSize: 2 * MiB }).copy(bytes, bytes.length - 512)
    expect(await failure(chunked(bytes, 65536))).toMatchObject({
      code: 'VHD_FOOTER_MISMATCH',
      offset: bytes.length - 512,
    })
    const garbage = Buffer.from(await written(4 * MiB, []))
    garbage.fill(0x41, garbage.length - 512)
    expect(await failure(chunked(garbage, 65536))).toMatchObject({
      code: 'VHD_BAD_COOKIE',
      offset: garbage.length - 512,
    })
  })

  it('stops with AbortedError when its signal aborts, and releases the source', async () => {
    const bytes = await written(4 * MiB, [0, 1])
    const controller = new AbortController()
    const source = Readable.from([bytes.subarray(0, 4096), bytes.subarray(4096)], { objectMode: false })
    const seen: string[] = []
    await expect(
      (async () => {
        for await (const item of readVhd(source, { signal: controller.signal })) {
          seen.push(item.kind)
          if (item.kind === 'bat') controller.abort()
        }
      })(),
    ).rejects.toMatchObject({ code: 'ABORTED' })
    expect(seen).toEqual(['footer', 'header', 'bat'])
    expect(source.destroyed).toBe(true)
  })

  it('destroys a Readable source when the consumer stops early', async () => {
    const bytes = await written(4 * MiB, [0, 1])
    const source = Readable.from([bytes], { objectMode: false })
    for await (const item of readVhd(source)) if (item.kind === 'header') break
    expect(source.destroyed).toBe(true)
  })
})
