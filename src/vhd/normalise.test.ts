import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { collect, handVhd, readableOf } from '../../test/helpers/vhd-fixtures.js'
import { VHD_BLOCK_SIZE } from './layout.js'
import { normaliseVhd } from './normalise.js'
import { readVhd } from './reader.js'
import type { VhdItem } from './reader.js'

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
