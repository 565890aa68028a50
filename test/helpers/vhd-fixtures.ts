import { Readable } from 'node:stream'
import { NO_OFFSET } from '../../src/vhd/fields.js'
import { encodeFooter } from '../../src/vhd/footer.js'
import type { VhdFooter } from '../../src/vhd/footer.js'
import { encodeHeader } from '../../src/vhd/header.js'
import type { VhdHeader } from '../../src/vhd/header.js'
import { vhdGeometry } from '../../src/vhd/geometry.js'
import { FEATURES_RESERVED, FOOTER_COOKIE, HEADER_COOKIE, VHD_VERSION, bitmapSize } from '../../src/vhd/layout.js'

export interface HandBlock {
  index: number
  /** absolute byte offset of the bitmap (sector aligned) */
  offset: number
  bitmap?: Buffer
  data: Buffer
}

/**
 * A VHD laid out by hand, for tests that need layouts our writer never makes (gaps, blocks out
 * of index order, partial bitmaps) or that corrupt one field. Whole file in memory: tests only.
 */
export function handVhd(options: {
  virtualSize: number
  blockSize?: number
  diskType?: number
  headerOffset?: number
  tableOffset?: number
  blocks?: HandBlock[]
  footer?: Partial<VhdFooter>
  header?: Partial<VhdHeader>
  /** bytes between the last block and the trailing footer */
  gapBeforeFooter?: number
}): Buffer {
  const blockSize = options.blockSize ?? 2 * 1024 * 1024
  const headerOffset = options.headerOffset ?? 512
  const tableOffset = options.tableOffset ?? 2048
  const entries = options.header?.maxTableEntries ?? Math.ceil(options.virtualSize / blockSize)
  const footer = encodeFooter({
    cookie: FOOTER_COOKIE,
    features: FEATURES_RESERVED,
    fileFormatVersion: VHD_VERSION,
    dataOffset: headerOffset,
    timestamp: 0,
    creatorApplication: 'test',
    creatorVersion: 1,
    creatorHostOs: 0,
    originalSize: options.virtualSize,
    currentSize: options.virtualSize,
    geometry: vhdGeometry(options.virtualSize),
    diskType: options.diskType ?? 3,
    checksum: 0,
    uniqueId: Buffer.alloc(16, 7),
    savedState: 0,
    ...options.footer,
  })
  const header = encodeHeader({
    cookie: HEADER_COOKIE,
    dataOffset: NO_OFFSET,
    tableOffset,
    headerVersion: VHD_VERSION,
    maxTableEntries: entries,
    blockSize,
    checksum: 0,
    parentUniqueId: Buffer.alloc(16),
    parentTimestamp: 0,
    parentUnicodeName: '',
    parentLocators: [],
    ...options.header,
  })
  const blocks = options.blocks ?? []
  const bitmapBytes = bitmapSize(blockSize)
  let end = Math.max(headerOffset + 1024, tableOffset + Math.ceil((entries * 4) / 512) * 512)
  for (const block of blocks) end = Math.max(end, block.offset + bitmapBytes + block.data.length)
  end += options.gapBeforeFooter ?? 0
  const file = Buffer.alloc(end + 512)
  footer.copy(file, 0)
  header.copy(file, headerOffset)
  file.fill(0xff, tableOffset, tableOffset + entries * 4)
  for (const block of blocks) {
    file.writeUInt32BE(block.offset / 512, tableOffset + block.index * 4)
    ;(block.bitmap ?? Buffer.alloc(bitmapBytes, 0xff)).copy(file, block.offset)
    block.data.copy(file, block.offset + bitmapBytes)
  }
  footer.copy(file, end)
  return file
}

/**
 * `bytes` in chunks of exactly `size` (1 for the one-byte-chunk tests). A plain async iterable:
 * a Readable's iterator would coalesce small chunks.
 */
export async function* chunked(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size)
}

/** A Readable of `bytes`. */
export function readableOf(bytes: Buffer): Readable {
  return Readable.from([bytes], { objectMode: false })
}

/** Everything a Readable yields, concatenated (small test streams only). */
export async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}
