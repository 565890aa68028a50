import type { Readable } from 'node:stream'
import { VhdError } from '../errors.js'
import { ByteReader } from './byte-reader.js'
import { NO_OFFSET } from './fields.js'
import { decodeFooter } from './footer.js'
import type { VhdFooter } from './footer.js'
import { decodeHeader } from './header.js'
import type { VhdHeader } from './header.js'
import {
  BAT_UNUSED,
  DISK_TYPE_DIFFERENCING,
  DISK_TYPE_DYNAMIC,
  DISK_TYPE_FIXED,
  FOOTER_COOKIE,
  FOOTER_SIZE,
  HEADER_SIZE,
  SECTOR_SIZE,
  VHD_BLOCK_SIZE,
  bitmapSize,
} from './layout.js'

/** What {@link readVhd} yields, in file order. */
export type VhdItem =
  | { kind: 'footer'; footer: VhdFooter }
  | { kind: 'header'; header: VhdHeader }
  | { kind: 'bat'; bat: Uint32Array }
  | { kind: 'block'; index: number; bitmap: Buffer; data: Buffer }
  | { kind: 'end'; footer: VhdFooter }

/** Largest block we accept: one block is what we hold in memory. */
const MAX_BLOCK_SIZE = VHD_BLOCK_SIZE
/** A BAT bigger than this cannot describe a legal (≤ 2040 GiB) disk at any sane block size. */
const MAX_BAT_BYTES = 64 * 1024 * 1024

/**
 * Parses a dynamic or differencing VHD strictly forward, as XAPI's importer does: footer copy,
 * header at its data offset, BAT at its table offset, then the allocated blocks in increasing
 * file offset, then the trailing footer (the last 512 bytes of the stream), which must equal the
 * leading one. Holds at most one block at a time; a consumer that stops early destroys the
 * source. Every malformation is a {@link VhdError} with a stable code and the byte offset:
 * `VHD_BAD_COOKIE`, `VHD_BAD_CHECKSUM`, `VHD_BAD_VERSION`, `VHD_UNSUPPORTED_TYPE`,
 * `VHD_BAD_HEADER`, `VHD_BAD_BLOCK_SIZE`, `VHD_BAT_OUT_OF_RANGE`, `VHD_BLOCK_OVERLAP`,
 * `VHD_TRUNCATED`, `VHD_FOOTER_MISMATCH`, `VHD_BAD_VALUE`; a failing source (reset socket) is
 * `VHD_SOURCE_ERROR` with the original error as `cause`, an abort is `AbortedError`.
 */
export async function* readVhd(
  source: Readable | AsyncIterable<Buffer>,
  options: { signal?: AbortSignal } = {},
): AsyncGenerator<VhdItem> {
  const iterator = (source as AsyncIterable<unknown>)[Symbol.asyncIterator]()
  const input = new ByteReader(iterator, options.signal)
  try {
    const leading = await readLeadingFooter(input)
    const footer = checkLeadingFooter(leading)
    yield { kind: 'footer', footer }

    await input.skipTo(footer.dataOffset, 'gap before the dynamic header')
    const headerOffset = input.position
    const header = decodeHeader(await input.read(HEADER_SIZE, 'dynamic header'), headerOffset)
    checkHeader(header, footer, headerOffset)
    yield { kind: 'header', header }

    if (header.tableOffset < input.position) {
      throw new VhdError(
        'VHD_BAD_HEADER',
        `VHD table offset ${header.tableOffset} points back into the header; streams are read forward only`,
        headerOffset + 16,
      )
    }
    await input.skipTo(header.tableOffset, 'gap before the BAT')
    const batBytes = await input.read(header.maxTableEntries * 4, 'BAT')
    const bat = decodeBat(batBytes, header.maxTableEntries)
    yield { kind: 'bat', bat }

    const order = blockOrder(bat, header, footer)
    const bitmapBytes = bitmapSize(header.blockSize)
    for (const index of order) {
      const offset = (bat[index] as number) * SECTOR_SIZE
      if (offset < input.position) {
        throw new VhdError(
          'VHD_BLOCK_OVERLAP',
          `VHD block ${index} at byte ${offset} overlaps the previous block`,
          header.tableOffset + index * 4,
        )
      }
      await input.skipTo(offset, `gap before block ${index}`)
      const bitmap = await input.read(bitmapBytes, `bitmap of block ${index}`)
      const data = await input.read(header.blockSize, `data of block ${index}`)
      yield { kind: 'block', index, bitmap, data }
    }

    const afterBlocks = input.position
    const { tail, offset } = await input.readTail(FOOTER_SIZE)
    if (tail.length < FOOTER_SIZE) {
      throw new VhdError(
        'VHD_TRUNCATED',
        `VHD stream ended ${tail.length} bytes after the last block, before the trailing footer`,
        afterBlocks + tail.length,
      )
    }
    const trailing = decodeFooter(tail, offset)
    if (!tail.equals(leading)) {
      throw new VhdError('VHD_FOOTER_MISMATCH', 'VHD trailing footer differs from the footer copy at the start', offset)
    }
    yield { kind: 'end', footer: trailing }
  } finally {
    // stopping early (break, error, abort) must release the source, e.g. destroy a socket
    await iterator.return?.()
  }
}

/**
 * The first 512 bytes; a short stream that does not even start like a VHD (an HTML error
 * page, say) is reported as what it is rather than as truncation.
 */
async function readLeadingFooter(input: ByteReader): Promise<Buffer> {
  const bytes = await input.readUpTo(FOOTER_SIZE)
  checkCookie(bytes)
  if (bytes.length < FOOTER_SIZE)
    throw new VhdError('VHD_TRUNCATED', 'VHD stream ended inside the footer', bytes.length)
  return bytes
}

/**
 * The start of a stream (any length) must start like a VHD footer: an HTML error page, say, is
 * reported as what it is rather than as truncation.
 */
export function checkCookie(bytes: Buffer): void {
  const prefix = bytes.subarray(0, Math.min(bytes.length, FOOTER_COOKIE.length)).toString('latin1')
  if (!FOOTER_COOKIE.startsWith(prefix)) {
    throw new VhdError(
      'VHD_BAD_COOKIE',
      `not a VHD: stream starts with ${JSON.stringify(bytes.subarray(0, 16).toString('latin1'))}`,
      0,
    )
  }
}

/** The leading footer copy (512 bytes): decoded, and only a dynamic or differencing disk. */
export function checkLeadingFooter(leading: Buffer): VhdFooter {
  const footer = decodeFooter(leading, 0)
  if (footer.diskType !== DISK_TYPE_DYNAMIC && footer.diskType !== DISK_TYPE_DIFFERENCING) {
    const what = footer.diskType === DISK_TYPE_FIXED ? 'a fixed VHD' : `disk type ${footer.diskType}`
    throw new VhdError('VHD_UNSUPPORTED_TYPE', `${what} cannot be streamed; only dynamic and differencing VHDs can`, 60)
  }
  if (footer.dataOffset === NO_OFFSET || footer.dataOffset < FOOTER_SIZE) {
    throw new VhdError(
      'VHD_BAD_HEADER',
      `VHD footer data offset ${footer.dataOffset} does not point past the footer`,
      16,
    )
  }
  return footer
}

/**
 * The allocated blocks of `bat` in increasing file offset, as a forward reader meets them; an
 * entry beyond the disk or before the end of the BAT is `VHD_BAT_OUT_OF_RANGE`.
 */
export function blockOrder(bat: Uint32Array, header: VhdHeader, footer: VhdFooter): number[] {
  const batEnd = header.tableOffset + header.maxTableEntries * 4
  const blockCount = Math.ceil(footer.currentSize / header.blockSize)
  const order: number[] = []
  for (let index = 0; index < bat.length; index++) {
    const sector = bat[index] as number
    if (sector === BAT_UNUSED) continue
    const entryOffset = header.tableOffset + index * 4
    if (index >= blockCount) {
      throw new VhdError(
        'VHD_BAT_OUT_OF_RANGE',
        `VHD block ${index} is allocated but the disk has only ${blockCount} blocks`,
        entryOffset,
      )
    }
    if (sector * SECTOR_SIZE < batEnd) {
      throw new VhdError(
        'VHD_BAT_OUT_OF_RANGE',
        `VHD block ${index} at sector ${sector} lies before the end of the BAT`,
        entryOffset,
      )
    }
    order.push(index)
  }
  return order.sort((a, b) => (bat[a] as number) - (bat[b] as number))
}

/** The BAT's big-endian entries. */
export function decodeBat(bytes: Buffer, entries: number): Uint32Array {
  const bat = new Uint32Array(entries)
  for (let i = 0; i < entries; i++) bat[i] = bytes.readUInt32BE(i * 4)
  return bat
}

/** The dynamic header's fields a forward reader relies on. */
export function checkHeader(header: VhdHeader, footer: VhdFooter, headerOffset: number): void {
  if (header.dataOffset !== NO_OFFSET) {
    throw new VhdError(
      'VHD_BAD_HEADER',
      `VHD dynamic header data offset must be all ones, is ${header.dataOffset}`,
      headerOffset + 8,
    )
  }
  const { blockSize } = header
  if (blockSize < SECTOR_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw new VhdError(
      'VHD_BAD_BLOCK_SIZE',
      `VHD block size ${blockSize} is not a power of two between ${SECTOR_SIZE} and ${MAX_BLOCK_SIZE}`,
      headerOffset + 32,
    )
  }
  if (header.tableOffset === NO_OFFSET) {
    throw new VhdError('VHD_BAD_HEADER', 'VHD dynamic header has no table offset', headerOffset + 16)
  }
  if (header.maxTableEntries * 4 > MAX_BAT_BYTES) {
    throw new VhdError('VHD_BAD_HEADER', `VHD BAT of ${header.maxTableEntries} entries is too large`, headerOffset + 28)
  }
  if (header.maxTableEntries < Math.ceil(footer.currentSize / blockSize)) {
    throw new VhdError(
      'VHD_BAD_HEADER',
      `VHD BAT has ${header.maxTableEntries} entries, too few for ${footer.currentSize} bytes`,
      headerOffset + 28,
    )
  }
}
