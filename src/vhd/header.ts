import { VhdError } from '../errors.js'
import { vhdChecksum } from './checksum.js'
import { readAscii, readBytes, readU32, readU64, writeAscii, writeBytes, writeU32, writeU64 } from './fields.js'
import {
  HEADER_COOKIE,
  HEADER_FIELDS as H,
  HEADER_SIZE,
  PARENT_LOCATOR_COUNT,
  PARENT_LOCATOR_FIELDS as L,
  PARENT_LOCATOR_SIZE,
  VHD_VERSION,
} from './layout.js'

/** One of the header's eight parent locator entries (all zero when unused). */
export interface VhdParentLocator {
  readonly platformCode: number
  /** sectors reserved per the specification; some writers store bytes here */
  readonly platformDataSpace: number
  readonly platformDataLength: number
  readonly platformDataOffset: number
}

/** The 1024-byte dynamic disk header (reference §6.2). Offsets of all ones read as -1. */
export interface VhdHeader {
  readonly cookie: string
  /** unused by the format: all ones (-1) */
  readonly dataOffset: number
  /** absolute offset of the BAT */
  readonly tableOffset: number
  readonly headerVersion: number
  readonly maxTableEntries: number
  readonly blockSize: number
  /** as stored; {@link encodeHeader} computes a fresh one */
  readonly checksum: number
  /** 16 bytes; zeros unless differencing */
  readonly parentUniqueId: Buffer
  /** seconds since 2000-01-01T00:00:00Z */
  readonly parentTimestamp: number
  readonly parentUnicodeName: string
  readonly parentLocators: readonly VhdParentLocator[]
}

export const EMPTY_LOCATOR: VhdParentLocator = {
  platformCode: 0,
  platformDataSpace: 0,
  platformDataLength: 0,
  platformDataOffset: 0,
}

/** Decodes and validates (cookie, checksum, version) a dynamic disk header at `fileOffset`. */
export function decodeHeader(bytes: Buffer, fileOffset: number): VhdHeader {
  if (bytes.length !== HEADER_SIZE) throw new RangeError(`a VHD header is ${HEADER_SIZE} bytes, got ${bytes.length}`)
  const cookie = readAscii(bytes, H.cookie)
  if (cookie !== HEADER_COOKIE) {
    throw new VhdError(
      'VHD_BAD_COOKIE',
      `VHD dynamic header cookie is ${JSON.stringify(cookie)} instead of "${HEADER_COOKIE}"`,
      fileOffset,
    )
  }
  const checksum = readU32(bytes, H.checksum)
  const expected = vhdChecksum(bytes, H.checksum)
  if (checksum !== expected) {
    throw new VhdError(
      'VHD_BAD_CHECKSUM',
      `VHD dynamic header checksum is 0x${checksum.toString(16)}, expected 0x${expected.toString(16)}`,
      fileOffset + H.checksum.offset,
    )
  }
  const headerVersion = readU32(bytes, H.headerVersion)
  if (headerVersion !== VHD_VERSION) {
    throw new VhdError(
      'VHD_BAD_VERSION',
      `unsupported VHD dynamic header version 0x${headerVersion.toString(16)}`,
      fileOffset + H.headerVersion.offset,
    )
  }
  const parentLocators: VhdParentLocator[] = []
  for (let i = 0; i < PARENT_LOCATOR_COUNT; i++) {
    const entry = bytes.subarray(
      H.parentLocators.offset + i * PARENT_LOCATOR_SIZE,
      H.parentLocators.offset + (i + 1) * PARENT_LOCATOR_SIZE,
    )
    parentLocators.push({
      platformCode: readU32(entry, L.platformCode),
      platformDataSpace: readU32(entry, L.platformDataSpace),
      platformDataLength: readU32(entry, L.platformDataLength),
      platformDataOffset: readU64(
        entry,
        L.platformDataOffset,
        fileOffset + H.parentLocators.offset + i * PARENT_LOCATOR_SIZE,
        'parent locator offset',
      ),
    })
  }
  return {
    cookie,
    dataOffset: readU64(bytes, H.dataOffset, fileOffset, 'header data offset'),
    tableOffset: readU64(bytes, H.tableOffset, fileOffset, 'table offset'),
    headerVersion,
    maxTableEntries: readU32(bytes, H.maxTableEntries),
    blockSize: readU32(bytes, H.blockSize),
    checksum,
    parentUniqueId: readBytes(bytes, H.parentUniqueId),
    parentTimestamp: readU32(bytes, H.parentTimestamp),
    parentUnicodeName: decodeUtf16Be(
      bytes.subarray(H.parentUnicodeName.offset, H.parentUnicodeName.offset + H.parentUnicodeName.size),
    ),
    parentLocators,
  }
}

/** The 1024 bytes of a header, with its checksum computed (the `checksum` field is ignored). */
export function encodeHeader(header: VhdHeader): Buffer {
  const bytes = Buffer.alloc(HEADER_SIZE)
  writeAscii(bytes, H.cookie, header.cookie)
  writeU64(bytes, H.dataOffset, header.dataOffset)
  writeU64(bytes, H.tableOffset, header.tableOffset)
  writeU32(bytes, H.headerVersion, header.headerVersion)
  writeU32(bytes, H.maxTableEntries, header.maxTableEntries)
  writeU32(bytes, H.blockSize, header.blockSize)
  writeBytes(bytes, H.parentUniqueId, header.parentUniqueId)
  writeU32(bytes, H.parentTimestamp, header.parentTimestamp)
  writeBytes(bytes, H.parentUnicodeName, encodeUtf16Be(header.parentUnicodeName))
  for (let i = 0; i < PARENT_LOCATOR_COUNT; i++) {
    const locator = header.parentLocators[i] ?? EMPTY_LOCATOR
    const entry = bytes.subarray(
      H.parentLocators.offset + i * PARENT_LOCATOR_SIZE,
      H.parentLocators.offset + (i + 1) * PARENT_LOCATOR_SIZE,
    )
    writeU32(entry, L.platformCode, locator.platformCode)
    writeU32(entry, L.platformDataSpace, locator.platformDataSpace)
    writeU32(entry, L.platformDataLength, locator.platformDataLength)
    writeU64(entry, L.platformDataOffset, locator.platformDataOffset)
  }
  writeU32(bytes, H.checksum, vhdChecksum(bytes, H.checksum))
  return bytes
}

function encodeUtf16Be(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf16le')
  bytes.swap16()
  return bytes
}

function decodeUtf16Be(bytes: Buffer): string {
  const copy = Buffer.from(bytes)
  copy.swap16()
  const text = copy.toString('utf16le')
  const end = text.indexOf('\u0000')
  return end === -1 ? text : text.slice(0, end)
}
