import { describe, expect, it } from 'vitest'
import { collect } from '../../test/helpers/vhd-fixtures.js'
import { decodeFooter } from './footer.js'
import { decodeHeader } from './header.js'
import { PLATFORM_MACX, VHD_BLOCK_SIZE } from './layout.js'
import { readVhd } from './reader.js'
import { uuidToBytes } from './uuid.js'
import { createVhdStream } from './writer.js'

const MiB = 1024 * 1024

describe('createVhdStream', () => {
  it('lays a dynamic VHD out exactly as vhd-tool does, with the length known up front', async () => {
    const reads: number[] = []
    const { length, stream } = createVhdStream({
      virtualSize: 7 * MiB,
      diskType: 'dynamic',
      blocks: [0, 3],
      readBlock: async index => {
        reads.push(index)
        return Buffer.alloc(VHD_BLOCK_SIZE, index + 1)
      },
      uuid: uuidToBytes('01234567-89ab-cdef-0123-456789abcdef'),
    })
    // nothing is read before the consumer asks
    expect(reads).toEqual([])
    expect(length).toBe(2048 + 512 + 2 * (512 + VHD_BLOCK_SIZE) + 512)
    const bytes = await collect(stream)
    expect(bytes.length).toBe(length)
    expect(reads).toEqual([0, 3])
    const footer = decodeFooter(bytes.subarray(0, 512), 0)
    expect(footer).toMatchObject({
      dataOffset: 512,
      timestamp: 0,
      creatorApplication: 'caml',
      currentSize: 7 * MiB,
      originalSize: 7 * MiB,
      diskType: 3,
      features: 2,
    })
    expect(footer.uniqueId.toString('hex')).toBe('0123456789abcdef0123456789abcdef')
    expect(bytes.subarray(length - 512).equals(bytes.subarray(0, 512))).toBe(true)
    const header = decodeHeader(bytes.subarray(512, 1536), 512)
    expect(header).toMatchObject({ tableOffset: 2048, maxTableEntries: 4, blockSize: VHD_BLOCK_SIZE, dataOffset: -1 })
    expect(bytes.subarray(1536, 2048).equals(Buffer.alloc(512))).toBe(true)
    expect([0, 1, 2, 3].map(i => bytes.readUInt32BE(2048 + i * 4))).toEqual([5, 0xffffffff, 0xffffffff, 5 + 1 + 4096])
    expect(bytes.subarray(2048 + 16, 2560).equals(Buffer.alloc(512 - 16, 0xff))).toBe(true)
    expect(bytes.subarray(2560, 3072).equals(Buffer.alloc(512, 0xff))).toBe(true)
    expect(bytes[3072]).toBe(1)
    expect(bytes[3072 + VHD_BLOCK_SIZE + 512]).toBe(4)
  })

  it('writes a differencing VHD with the parent fields and a MacX locator whose data area stays zero', async () => {
    const { stream } = createVhdStream({
      virtualSize: 4 * MiB,
      diskType: 'differencing',
      blocks: [1],
      readBlock: async () => Buffer.alloc(VHD_BLOCK_SIZE, 9),
      parent: { uuid: Buffer.alloc(16, 0xab), name: '/var/run/sr-mount/sr/base.vhd', timestamp: 1234 },
    })
    const kinds: string[] = []
    for await (const item of readVhd(stream)) {
      kinds.push(item.kind)
      if (item.kind === 'footer') expect(item.footer.diskType).toBe(4)
      if (item.kind === 'header') {
        expect(item.header.parentUnicodeName).toBe('/var/run/sr-mount/sr/base.vhd')
        expect(item.header.parentTimestamp).toBe(1234)
        expect(item.header.parentUniqueId.equals(Buffer.alloc(16, 0xab))).toBe(true)
        expect(item.header.parentLocators[0]).toMatchObject({ platformCode: PLATFORM_MACX, platformDataOffset: 1536 })
      }
    }
    expect(kinds).toEqual(['footer', 'header', 'bat', 'block', 'end'])
  })

  it('fails the stream when a block is not exactly 2 MiB, and refuses unsorted block lists', async () => {
    const { stream } = createVhdStream({
      virtualSize: 4 * MiB,
      diskType: 'dynamic',
      blocks: [0],
      readBlock: async () => Buffer.alloc(10),
    })
    await expect(collect(stream)).rejects.toMatchObject({ code: 'VHD_BAD_SOURCE', offset: 2560 })
    expect(() =>
      createVhdStream({
        virtualSize: 8 * MiB,
        diskType: 'dynamic',
        blocks: [2, 1],
        readBlock: async () => Buffer.alloc(0),
      }),
    ).toThrow(expect.objectContaining({ code: 'VHD_BAD_SOURCE' }))
    expect(() =>
      createVhdStream({
        virtualSize: 4 * MiB,
        diskType: 'dynamic',
        blocks: [2],
        readBlock: async () => Buffer.alloc(0),
      }),
    ).toThrow(expect.objectContaining({ code: 'VHD_BAD_SOURCE' }))
  })
})
