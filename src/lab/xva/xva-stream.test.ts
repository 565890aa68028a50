import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { isLabError } from '../lab-error.js'
import { TAR_END, TarReader, tarHeader, tarPadding } from './tar.js'
import { receiveDisks, type ReceiveOptions } from './xva-reader.js'
import { XVA_CHUNK_SIZE, chunkMemberName, xvaStream, type XvaDiskSource } from './xva-writer.js'
import { xxh64Hex } from './xxh64.js'

const MiB = XVA_CHUNK_SIZE

/** A disk in memory with data in the given chunks (a distinct byte per chunk), zeros elsewhere. */
function memoryDisk(id: string, size: number, dataChunks: readonly number[]): XvaDiskSource & { bytes: Buffer } {
  const bytes = Buffer.alloc(size)
  for (const n of dataChunks) bytes.fill(n + 1, n * MiB, Math.min(size, (n + 1) * MiB))
  return {
    id,
    size,
    bytes,
    // every chunk is a candidate: the writer must find the zero ones itself
    candidates: Array.from({ length: Math.ceil(size / MiB) }, (_, i) => i),
    read: async (offset, length) => Buffer.from(bytes.subarray(offset, offset + length)),
  }
}

async function collect(source: AsyncIterable<Buffer>): Promise<{ data: Buffer; largest: number }> {
  const parts: Buffer[] = []
  let largest = 0
  for await (const part of source) {
    parts.push(part)
    largest = Math.max(largest, part.length)
  }
  return { data: Buffer.concat(parts), largest }
}

async function* pieces(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size)
}

async function members(data: Buffer): Promise<{ name: string; body: Buffer }[]> {
  const reader = new TarReader(pieces(data, 65536))
  const out: { name: string; body: Buffer }[] = []
  for (let entry = await reader.next(); entry !== undefined; entry = await reader.next())
    out.push({ name: entry.name, body: await reader.body(4 * MiB) })
  return out
}

/** An XVA body (no ova.xml) from explicit members, for the reader's refusals. */
function rawArchive(list: readonly [string, Buffer][]): Buffer {
  return Buffer.concat([
    ...list.flatMap(([name, body]) => [tarHeader(name, body.length), body, tarPadding(body.length)]),
    TAR_END,
  ])
}

async function receive(
  data: Buffer,
  disks: { id: string; size: number }[],
  options: Partial<ReceiveOptions> = {},
): Promise<Map<string, Buffer>> {
  const out = new Map(disks.map(d => [d.id, Buffer.alloc(d.size)]))
  const tar = new TarReader(pieces(data, 4097))
  await receiveDisks(
    tar,
    disks.map(d => ({ ...d, write: async (offset, chunk) => void chunk.copy(out.get(d.id)!, offset) })),
    { exportVsn: 2, force: false, ...options },
  )
  return out
}

async function failure(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  return isLabError(error) ? error.code : String(error)
}

describe('xvaStream', () => {
  it('writes ova.xml first, disks in string order of their ids, chunks with .xxhash, zero chunks only when first or last', async () => {
    const a = memoryDisk('Ref:10', 5 * MiB, [2])
    const b = memoryDisk('Ref:2', 3 * MiB, [0, 1])
    const { data, largest } = await collect(xvaStream('<value>meta</value>', [a, b]))
    const list = await members(data)
    expect(list.map(m => m.name)).toEqual([
      'ova.xml',
      ...[
        'Ref:10/00000000',
        'Ref:10/00000002',
        'Ref:10/00000004',
        'Ref:2/00000000',
        'Ref:2/00000001',
        'Ref:2/00000002',
      ].flatMap(n => [n, `${n}.xxhash`]),
    ])
    for (let i = 1; i < list.length; i += 2) expect(list[i + 1]!.body.toString()).toBe(xxh64Hex(list[i]!.body))
    // one chunk at a time: no yielded piece is larger than a chunk with its header
    expect(largest).toBeLessThanOrEqual(MiB + 512)
  })

  it('round-trips through receiveDisks, however the stream is cut into pieces', async () => {
    const disks = [memoryDisk('Ref:3', 4 * MiB + 4096, [0, 3, 4]), memoryDisk('Ref:7', 2 * MiB, [])]
    const { data } = await collect(xvaStream('<value>x</value>', disks))
    const tar = new TarReader(pieces(data, 777))
    expect((await tar.next())?.name).toBe('ova.xml')
    await tar.body(1024)
    const out = disks.map(d => Buffer.alloc(d.size, 0xee))
    const written: number[] = []
    await receiveDisks(
      tar,
      disks.map((d, i) => ({
        id: d.id,
        size: d.size,
        write: async (offset, chunk) => {
          written.push(chunk.length)
          chunk.copy(out[i]!, offset)
        },
      })),
      { exportVsn: 2, force: false },
    )
    // skipped chunks are left alone (new VDIs read as zeros), written ones are exact
    for (const [i, d] of disks.entries()) {
      for (let c = 0; c * MiB < d.size; c++) {
        const got = out[i]!.subarray(c * MiB, (c + 1) * MiB)
        const skipped = got.every(byte => byte === 0xee)
        // Buffer#equals, not toEqual: vitest compares a 1 MiB buffer element by element
        expect(
          (skipped ? Buffer.alloc(got.length) : got).equals(d.bytes.subarray(c * MiB, (c + 1) * MiB)),
          `${d.id} chunk ${c}`,
        ).toBe(true)
      }
    }
    expect(Math.max(...written)).toBeLessThanOrEqual(MiB)
    expect(await tar.next()).toBeUndefined()
  })
})

describe('receiveDisks', () => {
  const chunk = (fill: number, length = MiB): Buffer => Buffer.alloc(length, fill)
  const sum = (data: Buffer): Buffer => Buffer.from(xxh64Hex(data))

  it('accepts SHA-1 .checksum members of older XAPI and zero-length keep-alive chunks', async () => {
    const one = chunk(1)
    const two = chunk(2)
    const sha = (data: Buffer): Buffer => Buffer.from(createHash('sha1').update(data).digest('hex'))
    const data = rawArchive([
      ['Ref:1/00000000', one],
      ['Ref:1/00000000.checksum', sha(one)],
      ['Ref:1/00000001', Buffer.alloc(0)],
      ['Ref:1/00000001.xxhash', sum(Buffer.alloc(0))],
      ['Ref:1/00000002', two],
      ['Ref:1/00000002.xxhash', sum(two)],
    ])
    const out = await receive(data, [{ id: 'Ref:1', size: 2 * MiB }])
    expect(out.get('Ref:1')!.equals(Buffer.concat([one, two]))).toBe(true)
  })

  it('refuses a wrong checksum with XAPI wording, unless forced', async () => {
    const one = chunk(1)
    const data = rawArchive([
      ['Ref:1/00000000', one],
      ['Ref:1/00000000.xxhash', Buffer.from('0000000000000000')],
    ])
    const error = await receive(data, [{ id: 'Ref:1', size: MiB }]).catch((e: unknown) => e)
    expect(isLabError(error) && error.code).toBe('XVA_CHECKSUM_MISMATCH')
    expect((error as Error).message).toContain(
      `Block Ref:1/00000000 checksum failed: original = 0000000000000000; recomputed = ${xxh64Hex(one)}`,
    )
    expect((await receive(data, [{ id: 'Ref:1', size: MiB }], { force: true })).get('Ref:1')!.equals(one)).toBe(true)
  })

  it('refuses chunks that are out of order, of another disk, past the disk, or with an unknown checksum kind', async () => {
    const one = chunk(1)
    const disk = [{ id: 'Ref:1', size: 3 * MiB }]
    expect(
      await failure(
        receive(
          rawArchive([
            ['Ref:1/00000001', one],
            ['Ref:1/00000001.xxhash', sum(one)],
            ['Ref:1/00000000', one],
          ]),
          disk,
        ),
      ),
    ).toBe('XVA_INVALID')
    expect(await failure(receive(rawArchive([['Ref:9/00000000', one]]), disk))).toBe('XVA_INVALID')
    expect(await failure(receive(rawArchive([['Ref:1/00000005', one]]), disk))).toBe('XVA_BEYOND_DISK')
    expect(
      await failure(
        receive(
          rawArchive([
            ['Ref:1/00000000', one],
            ['Ref:1/00000000.md5', sum(one)],
          ]),
          disk,
        ),
      ),
    ).toBe('XVA_INVALID')
  })

  it('reports a stream that ends before the last chunk as XVA_TRUNCATED', async () => {
    const one = chunk(1)
    expect(
      await failure(
        receive(
          rawArchive([
            ['Ref:1/00000000', one],
            ['Ref:1/00000000.xxhash', sum(one)],
          ]),
          [{ id: 'Ref:1', size: 2 * MiB }],
        ),
      ),
    ).toBe('XVA_TRUNCATED')
    const whole = rawArchive([
      ['Ref:1/00000000', one],
      ['Ref:1/00000000.xxhash', sum(one)],
    ])
    expect(await failure(receive(whole.subarray(0, 700_000), [{ id: 'Ref:1', size: MiB }]))).toBe('XVA_TRUNCATED')
  })

  it('names the member it was given for the chunk number it expected', () => {
    expect(chunkMemberName('Ref:12', 42)).toBe('Ref:12/00000042')
  })
})
