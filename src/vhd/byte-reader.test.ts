import { describe, expect, it } from 'vitest'
import { ByteReader } from './byte-reader.js'

function bytes(length: number): Buffer {
  return Buffer.from(Array.from({ length }, (_, i) => (i * 31 + 7) & 0xff))
}

async function* pieces(data: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let at = 0
  for (let k = 0; at < data.length; k++) {
    const size = sizes[k % sizes.length] as number
    yield data.subarray(at, at + size)
    at += size
  }
}

describe('ByteReader', () => {
  it('reads exact sizes, skips and keeps the tail across any chunking', async () => {
    const data = bytes(5000)
    for (const sizes of [[1], [7], [511, 1, 2], [512], [4096], [10_000], [3, 0, 900]]) {
      const reader = new ByteReader(pieces(data, sizes)[Symbol.asyncIterator]())
      expect((await reader.read(10, 'start')).equals(data.subarray(0, 10))).toBe(true)
      await reader.skipTo(1000, 'gap')
      expect((await reader.read(1500, 'middle')).equals(data.subarray(1000, 2500))).toBe(true)
      const { tail, offset } = await reader.readTail(512)
      expect({ sizes, offset }).toEqual({ sizes, offset: 5000 - 512 })
      expect(tail.equals(data.subarray(5000 - 512))).toBe(true)
      expect(reader.position).toBe(5000)
    }
  })

  it('reports truncation with the offset reached, and a short tail as what there was', async () => {
    const data = bytes(300)
    const reader = new ByteReader(pieces(data, [64])[Symbol.asyncIterator]())
    await expect(reader.read(301, 'footer')).rejects.toMatchObject({ code: 'VHD_TRUNCATED', offset: 300 })
    const short = new ByteReader(pieces(data, [64])[Symbol.asyncIterator]())
    await short.skipTo(100, 'gap')
    expect(await short.readTail(512)).toEqual({ tail: data.subarray(100), offset: 100 })
  })
})
