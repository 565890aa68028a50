import { Readable } from 'node:stream'
import { finished } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import { chunked, collect, handVhd, readableOf } from '../../test/helpers/vhd-fixtures.js'
import { VhdError } from '../errors.js'
import { VHD_BLOCK_SIZE } from './layout.js'
import { normaliseVhd } from './normalise.js'
import { readVhd } from './reader.js'
import type { VhdItem } from './reader.js'
import { createVhdStream } from './writer.js'

const MiB = 1024 * 1024

async function blocksOf(stream: AsyncIterable<Buffer>): Promise<Extract<VhdItem, { kind: 'block' }>[]> {
  const out: Extract<VhdItem, { kind: 'block' }>[] = []
  for await (const item of readVhd(stream)) if (item.kind === 'block') out.push(item)
  return out
}

describe('normaliseVhd', () => {
  it('re-emits an odd layout canonically, same blocks and bitmaps, with the announced length', async () => {
    const bitmap = Buffer.alloc(512)
    bitmap.fill(0x0f, 10, 20)
    const source = handVhd({
      virtualSize: 9 * MiB,
      headerOffset: 4096,
      tableOffset: 16384,
      blocks: [
        { index: 4, offset: 20480, data: Buffer.alloc(VHD_BLOCK_SIZE, 4) },
        { index: 1, offset: 20480 + 512 + VHD_BLOCK_SIZE + 65536, bitmap, data: Buffer.alloc(VHD_BLOCK_SIZE, 1) },
      ],
      gapBeforeFooter: 4096,
      diskType: 4,
      header: { parentUnicodeName: 'parent.vhd', parentUniqueId: Buffer.alloc(16, 3), parentTimestamp: 77 },
    })
    const { length, footer, header, stream } = await normaliseVhd(readableOf(source))
    expect(length).toBe(2048 + 512 + 2 * (512 + VHD_BLOCK_SIZE) + 512)
    expect(footer).toMatchObject({ dataOffset: 512, diskType: 4, currentSize: 9 * MiB })
    expect(header).toMatchObject({ tableOffset: 2048, parentUnicodeName: 'parent.vhd', parentTimestamp: 77 })
    const bytes = await collect(stream)
    expect(bytes.length).toBe(length)
    const blocks = await blocksOf(readableOf(bytes))
    expect(blocks.map(b => b.index)).toEqual([4, 1])
    expect(blocks[1]?.bitmap.equals(bitmap)).toBe(true)
    expect(blocks[0]?.data.equals(Buffer.alloc(VHD_BLOCK_SIZE, 4))).toBe(true)
    expect(blocks[1]?.data.equals(Buffer.alloc(VHD_BLOCK_SIZE, 1))).toBe(true)
  })

  it('rejects before emitting anything when the stream is not a VHD', async () => {
    await expect(
      normaliseVhd(readableOf(Buffer.from('<!DOCTYPE html><html>Service Unavailable</html>'))),
    ).rejects.toMatchObject({ code: 'VHD_BAD_COOKIE' })
  })

  it('errors the stream when the source is cut inside a block, and never emits the full length', async () => {
    const source = handVhd({
      virtualSize: 4 * MiB,
      blocks: [{ index: 0, offset: 2560, data: Buffer.alloc(VHD_BLOCK_SIZE, 5) }],
    })
    const { stream } = await normaliseVhd(Readable.from([source.subarray(0, 2560 + MiB)], { objectMode: false }))
    await expect(collect(stream)).rejects.toMatchObject({ code: 'VHD_TRUNCATED' })
  })
})

const BLOCK = VHD_BLOCK_SIZE

function patterned(index: number, size = BLOCK): Buffer {
  const block = Buffer.alloc(size)
  for (let i = 0; i < size; i += 4) block.writeUInt32BE((index * 1_000_003 + i) >>> 0, i)
  return block
}

async function writtenVhd(virtualSize: number, blocks: number[]): Promise<Buffer> {
  const { stream } = createVhdStream({ virtualSize, diskType: 'dynamic', blocks, readBlock: async i => patterned(i) })
  return collect(stream)
}

/** A Readable of `bytes` in chunks of `size` (a Readable's own iterator would coalesce them). */
function readableIn(bytes: Buffer, size: number): Readable {
  return Readable.from(chunked(bytes, size), { objectMode: false })
}

/** What readVhd says of `bytes`, and what normaliseVhd (then its stream) says. */
async function verdicts(bytes: Buffer, size: number): Promise<{ reader: unknown; normaliser: unknown }> {
  const describe = (error: unknown): unknown =>
    error instanceof VhdError ? { code: error.code, offset: error.offset } : String(error)
  let reader: unknown = 'accepted'
  try {
    for await (const item of readVhd(chunked(bytes, size))) void item
  } catch (error) {
    reader = describe(error)
  }
  let normaliser: unknown = 'accepted'
  try {
    const { stream } = await normaliseVhd(readableIn(bytes, size))
    await collect(stream)
  } catch (error) {
    normaliser = describe(error)
  }
  return { reader, normaliser }
}

describe('normaliseVhd as a pass-through', () => {
  it('re-emits a canonical VHD byte for byte, whatever the chunking (1 byte, odd sizes, 64 KiB)', async () => {
    const small = handVhd({
      virtualSize: 64 * 1024,
      blockSize: 4096,
      blocks: [
        { index: 3, offset: 2560, data: patterned(3, 4096) },
        { index: 0, offset: 2560 + 512 + 4096, data: patterned(0, 4096) },
      ],
    })
    const once = await collect((await normaliseVhd(readableOf(small))).stream)
    for (const size of [1, 7, 1000, 4096]) {
      const { length, stream } = await normaliseVhd(readableIn(small, size))
      const out = await collect(stream)
      expect({ size, length, equal: out.equals(once) }).toEqual({ size, length: out.length, equal: true })
    }
    const big = await writtenVhd(8 * MiB, [0, 2, 3])
    for (const size of [999, 65536, 3 * MiB]) {
      const { length, stream } = await normaliseVhd(readableIn(big, size))
      const out = await collect(stream)
      expect({ size, length, equal: out.equals(big) }).toEqual({ size, length: big.length, equal: true })
    }
  })

  it('forwards block bytes as views of the chunks they arrived in, never copies', async () => {
    const bytes = await writtenVhd(8 * MiB, [0, 1, 3])
    const arrived = [
      ...(function* () {
        for (let i = 0; i < bytes.length; i += 65536) yield Buffer.from(bytes.subarray(i, i + 65536))
      })(),
    ]
    const sources = new Set(arrived.map(chunk => chunk.buffer))
    const { length, stream } = await normaliseVhd(Readable.from(arrived, { objectMode: false }))
    let viewed = 0
    let total = 0
    // flowing, as a pipe reads it (an async iterator's read() would concatenate what is buffered)
    stream.on('data', (chunk: Buffer) => {
      total += chunk.length
      if (sources.has(chunk.buffer as ArrayBuffer)) viewed += chunk.length
    })
    await finished(stream)
    expect(total).toBe(length)
    // everything but the re-encoded prologue (footer, header, BAT) and the trailing footer
    expect(viewed).toBe(3 * (512 + BLOCK))
  })

  it('refuses what readVhd refuses, with the same code and offset', async () => {
    const good = await writtenVhd(6 * MiB, [0, 2])
    const block0 = 2048 + 512
    const block2 = block0 + 512 + BLOCK
    const cases: Buffer[] = [
      0,
      1,
      511,
      512,
      513,
      1536,
      2047,
      2050,
      block0,
      block0 + 100,
      block0 + 512 + MiB,
      block2,
      good.length - 1,
    ].map(cut => good.subarray(0, cut))
    const badHeaderSum = Buffer.from(good)
    badHeaderSum[512 + 600] = 1
    cases.push(badHeaderSum)
    const mismatch = Buffer.from(good)
    mismatch.writeUInt8(mismatch.readUInt8(mismatch.length - 100) ^ 1, mismatch.length - 100)
    cases.push(mismatch)
    cases.push(Buffer.from('<html><body>Service Unavailable</body></html>'))
    cases.push(handVhd({ virtualSize: 4 * MiB, diskType: 2 }))
    cases.push(handVhd({ virtualSize: 4 * MiB, header: { blockSize: 3 * MiB } }))
    cases.push(handVhd({ virtualSize: 4 * MiB, tableOffset: 2048, header: { tableOffset: 1024 } }))
    const intoBat = handVhd({ virtualSize: 4 * MiB })
    intoBat.writeUInt32BE(2048 / 512, 2048 + 4)
    cases.push(intoBat)
    cases.push(
      handVhd({
        virtualSize: 4 * MiB,
        blocks: [
          { index: 0, offset: 2560, data: patterned(0) },
          { index: 1, offset: 2560 + 1024, data: patterned(1) },
        ],
      }),
    )
    for (const [n, bytes] of cases.entries()) {
      for (const size of [4096, 65536]) {
        const { reader, normaliser } = await verdicts(bytes, size)
        expect(reader).not.toBe('accepted')
        expect({ n, size, normaliser }).toEqual({ n, size, normaliser: reader })
      }
    }
  })

  it('holds back: a consumer that does not read stops the source after a few chunks', async () => {
    let produced = 0
    const { stream: source } = createVhdStream({
      virtualSize: 128 * MiB,
      diskType: 'dynamic',
      blocks: Array.from({ length: 64 }, (_, i) => i),
      readBlock: async i => {
        produced += BLOCK
        return patterned(i)
      },
    })
    const { length, stream } = await normaliseVhd(source)
    for (let i = 0; i < 50; i++) await new Promise(resolve => setImmediate(resolve))
    expect(produced).toBeGreaterThan(0)
    // 64 blocks would be 128 MiB: the stages' buffers hold a few chunks, the source one block
    expect(produced).toBeLessThanOrEqual(8 * MiB)
    const out = await collect(stream)
    expect(out.length).toBe(length)
    expect(produced).toBe(64 * BLOCK)
  })

  it('types a failing source VHD_SOURCE_ERROR with the offset, and releases the source when its consumer stops', async () => {
    const good = await writtenVhd(4 * MiB, [0, 1])
    const failing = new Readable({ read() {} })
    failing.push(good.subarray(0, 8192))
    const { stream } = await normaliseVhd(failing)
    const collected = collect(stream)
    failing.destroy(new Error('socket hang up'))
    await expect(collected).rejects.toMatchObject({ code: 'VHD_SOURCE_ERROR', offset: 8192 })

    const source = Readable.from(chunked(good, 65536), { objectMode: false })
    const normalised = await normaliseVhd(source)
    normalised.stream.destroy()
    await new Promise(resolve => setImmediate(resolve))
    expect(source.destroyed).toBe(true)
  })

  it('stops with AbortedError when its signal aborts, and destroys the source', async () => {
    const good = await writtenVhd(4 * MiB, [0, 1])
    const controller = new AbortController()
    const source = Readable.from(chunked(good, 65536), { objectMode: false })
    const { stream } = await normaliseVhd(source, { signal: controller.signal })
    const collected = collect(stream)
    controller.abort()
    await expect(collected).rejects.toMatchObject({ code: 'ABORTED' })
    expect(source.destroyed).toBe(true)
    const early = new AbortController()
    early.abort()
    await expect(normaliseVhd(readableOf(good), { signal: early.signal })).rejects.toMatchObject({ code: 'ABORTED' })
  })

  it('aborted before anyone reads it (the import failed to start) errors the stream without an unhandled error', async () => {
    const good = await writtenVhd(4 * MiB, [])
    const controller = new AbortController()
    const source = Readable.from(chunked(good, 65536), { objectMode: false })
    const { stream } = await normaliseVhd(source, { signal: controller.signal })
    await finished(source) // all of it read in: nothing but the stream holds the bytes now
    const uncaught: unknown[] = []
    const onUncaught = (error: unknown): void => void uncaught.push(error)
    process.prependListener('uncaughtException', onUncaught)
    try {
      controller.abort()
      await new Promise(resolve => setTimeout(resolve, 20))
    } finally {
      process.off('uncaughtException', onUncaught)
    }
    expect(uncaught).toEqual([])
    expect(stream.destroyed).toBe(true)
    expect(stream.errored).toMatchObject({ code: 'ABORTED' })
    await expect(finished(stream)).rejects.toMatchObject({ code: 'ABORTED' })
  })
})
