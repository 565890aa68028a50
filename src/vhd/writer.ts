import { Readable } from 'node:stream'
import { VhdError } from '../errors.js'
import { NO_OFFSET } from './fields.js'
import { encodeFooter } from './footer.js'
import type { VhdFooter } from './footer.js'
import { EMPTY_LOCATOR, encodeHeader } from './header.js'
import type { VhdHeader, VhdParentLocator } from './header.js'
import { vhdGeometry } from './geometry.js'
import {
  DISK_TYPE_DIFFERENCING,
  DISK_TYPE_DYNAMIC,
  FEATURES_RESERVED,
  FOOTER_COOKIE,
  HEADER_COOKIE,
  HEADER_SIZE,
  PARENT_LOCATOR_COUNT,
  PLATFORM_MACX,
  SECTOR_SIZE,
  VHD_BLOCK_SIZE,
  VHD_MAX_SIZE,
  VHD_VERSION,
  bitmapSize,
  canonicalLayout,
} from './layout.js'
import type { CanonicalLayout } from './layout.js'
import { randomUuidBytes } from './uuid.js'

/** What {@link createVhdStream} serialises: which blocks, and how to get each one. */
export interface VhdBlockSource {
  /** bytes; the footer's current (and original) size */
  virtualSize: number
  diskType: 'dynamic' | 'differencing'
  /** indexes of the blocks to include, ascending */
  blocks: readonly number[]
  /** one whole block (VHD_BLOCK_SIZE bytes), called once per block, in order, only as the stream is read */
  readBlock(index: number): Promise<Buffer>
  /** footer unique id (16 bytes); random when absent */
  uuid?: Buffer
  /** differencing only: the parent's footer unique id, its name (a path) and its time stamp in seconds since 2000-01-01 */
  parent?: { uuid: Buffer; name: string; timestamp: number }
}

/**
 * Serialises blocks as a VHD in vhd-tool's exact layout (reference §5.2): footer copy, header,
 * a zero sector, BAT, then each block as an all-ones sector bitmap plus its data in increasing
 * index, then the footer. The length is known before the first byte; the stream fails with
 * `VHD_BAD_SOURCE` if a block is not exactly one block long.
 */
export function createVhdStream(source: VhdBlockSource): { length: number; stream: Readable } {
  const entries = Math.ceil(source.virtualSize / VHD_BLOCK_SIZE)
  checkSource(source, entries)
  const layout = canonicalLayout(entries, VHD_BLOCK_SIZE, source.blocks.length)
  const differencing = source.diskType === 'differencing'
  const footer: VhdFooter = {
    cookie: FOOTER_COOKIE,
    features: FEATURES_RESERVED,
    fileFormatVersion: VHD_VERSION,
    dataOffset: layout.headerOffset,
    // vhd-tool writes 0 here; reproducing it keeps lab exports byte-comparable with XAPI's
    timestamp: 0,
    creatorApplication: 'caml',
    creatorVersion: 1,
    creatorHostOs: 0,
    originalSize: source.virtualSize,
    currentSize: source.virtualSize,
    geometry: vhdGeometry(source.virtualSize),
    diskType: differencing ? DISK_TYPE_DIFFERENCING : DISK_TYPE_DYNAMIC,
    checksum: 0,
    uniqueId: source.uuid ?? randomUuidBytes(),
    savedState: 0,
  }
  const header: VhdHeader = {
    cookie: HEADER_COOKIE,
    dataOffset: NO_OFFSET,
    tableOffset: layout.tableOffset,
    headerVersion: VHD_VERSION,
    maxTableEntries: entries,
    blockSize: VHD_BLOCK_SIZE,
    checksum: 0,
    parentUniqueId: differencing && source.parent !== undefined ? source.parent.uuid : Buffer.alloc(16),
    parentTimestamp: differencing && source.parent !== undefined ? source.parent.timestamp : 0,
    parentUnicodeName: differencing && source.parent !== undefined ? source.parent.name : '',
    parentLocators: differencing && source.parent !== undefined ? macxLocator(source.parent.name, layout) : [],
  }
  const { footerBytes, prologue } = encodePrologue(layout, footer, header, source.blocks)
  const bitmap = Buffer.alloc(bitmapSize(VHD_BLOCK_SIZE), 0xff)

  async function* generate(): AsyncGenerator<Buffer> {
    yield prologue
    let offset = prologue.length
    for (const index of source.blocks) {
      const data = await source.readBlock(index)
      if (data.length !== VHD_BLOCK_SIZE) {
        throw new VhdError(
          'VHD_BAD_SOURCE',
          `block ${index} read as ${data.length} bytes instead of ${VHD_BLOCK_SIZE}`,
          offset,
        )
      }
      yield bitmap
      yield data
      offset += bitmap.length + data.length
    }
    yield footerBytes
  }
  return { length: layout.length, stream: Readable.from(generate(), { objectMode: false }) }
}

/**
 * vhd-tool's one MacX locator (`file://<parent path>`) whose data area at 1536 it never
 * writes: importers ignore parent information, so we reproduce it rather than improve on it.
 */
function macxLocator(name: string, layout: CanonicalLayout): VhdParentLocator[] {
  const locators: VhdParentLocator[] = [
    {
      platformCode: PLATFORM_MACX,
      platformDataSpace: 1,
      platformDataLength: Math.min(Buffer.byteLength(`file://${name}`), SECTOR_SIZE),
      platformDataOffset: layout.tableOffset - SECTOR_SIZE,
    },
  ]
  while (locators.length < PARENT_LOCATOR_COUNT) locators.push(EMPTY_LOCATOR)
  return locators
}

function checkSource(source: VhdBlockSource, entries: number): void {
  if (!Number.isSafeInteger(source.virtualSize) || source.virtualSize <= 0 || source.virtualSize > VHD_MAX_SIZE) {
    throw new VhdError('VHD_BAD_SOURCE', `virtual size ${source.virtualSize} is not between 1 byte and 2040 GiB`, 0)
  }
  let previous = -1
  for (const index of source.blocks) {
    if (!Number.isInteger(index) || index <= previous || index >= entries) {
      throw new VhdError(
        'VHD_BAD_SOURCE',
        `block list must be ascending indexes below ${entries}; got ${index} after ${previous}`,
        0,
      )
    }
    previous = index
  }
  if (source.uuid !== undefined && source.uuid.length !== 16)
    throw new VhdError('VHD_BAD_SOURCE', 'VHD unique id must be 16 bytes', 0)
}

/**
 * The bytes before the first block in the canonical layout (footer copy, header, locator gap,
 * BAT placing `blockOrder`'s blocks one after another in that order), and the footer bytes that
 * also close the file. Shared by the writer and the normaliser.
 */
export function encodePrologue(
  layout: CanonicalLayout,
  footer: VhdFooter,
  header: VhdHeader,
  blockOrder: readonly number[],
): { footerBytes: Buffer; prologue: Buffer } {
  const bat = Buffer.alloc(layout.batBytes, 0xff)
  blockOrder.forEach((index, k) =>
    bat.writeUInt32BE((layout.firstBlockOffset + k * layout.blockStride) / SECTOR_SIZE, index * 4),
  )
  const footerBytes = encodeFooter(footer)
  const prologue = Buffer.concat([
    footerBytes,
    encodeHeader(header),
    Buffer.alloc(layout.tableOffset - layout.headerOffset - HEADER_SIZE),
    bat,
  ])
  return { footerBytes, prologue }
}
