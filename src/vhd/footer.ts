import { VhdError } from '../errors.js'
import { vhdChecksum } from './checksum.js'
import { readAscii, readBytes, readU32, readU64, writeAscii, writeBytes, writeU32, writeU64 } from './fields.js'
import type { VhdGeometry } from './geometry.js'
import { FOOTER_COOKIE, FOOTER_FIELDS as F, FOOTER_SIZE, VHD_VERSION } from './layout.js'

/** The 512-byte hard disk footer (reference §6.1). Offsets of all ones read as -1. */
export interface VhdFooter {
  readonly cookie: string
  readonly features: number
  readonly fileFormatVersion: number
  /** absolute offset of the dynamic header; -1 for fixed disks */
  readonly dataOffset: number
  /** seconds since 2000-01-01T00:00:00Z */
  readonly timestamp: number
  readonly creatorApplication: string
  readonly creatorVersion: number
  readonly creatorHostOs: number
  readonly originalSize: number
  /** the virtual size, in bytes */
  readonly currentSize: number
  readonly geometry: VhdGeometry
  /** 2 fixed, 3 dynamic, 4 differencing */
  readonly diskType: number
  /** as stored; {@link encodeFooter} computes a fresh one */
  readonly checksum: number
  /** 16 bytes */
  readonly uniqueId: Buffer
  readonly savedState: number
}

/**
 * Decodes and validates (cookie, checksum, version) a footer. `fileOffset` is where it sits in
 * the stream, for error offsets.
 */
export function decodeFooter(bytes: Buffer, fileOffset: number): VhdFooter {
  if (bytes.length !== FOOTER_SIZE) throw new RangeError(`a VHD footer is ${FOOTER_SIZE} bytes, got ${bytes.length}`)
  const cookie = readAscii(bytes, F.cookie)
  if (cookie !== FOOTER_COOKIE) {
    throw new VhdError(
      'VHD_BAD_COOKIE',
      `not a VHD: footer cookie is ${JSON.stringify(cookie)} instead of "${FOOTER_COOKIE}"`,
      fileOffset,
    )
  }
  const checksum = readU32(bytes, F.checksum)
  const expected = vhdChecksum(bytes, F.checksum)
  if (checksum !== expected) {
    throw new VhdError(
      'VHD_BAD_CHECKSUM',
      `VHD footer checksum is 0x${checksum.toString(16)}, expected 0x${expected.toString(16)}`,
      fileOffset + F.checksum.offset,
    )
  }
  const fileFormatVersion = readU32(bytes, F.fileFormatVersion)
  if (fileFormatVersion !== VHD_VERSION) {
    throw new VhdError(
      'VHD_BAD_VERSION',
      `unsupported VHD file format version 0x${fileFormatVersion.toString(16)}`,
      fileOffset + F.fileFormatVersion.offset,
    )
  }
  const geometry = readU32(bytes, F.geometry)
  return {
    cookie,
    features: readU32(bytes, F.features),
    fileFormatVersion,
    dataOffset: readU64(bytes, F.dataOffset, fileOffset, 'data offset'),
    timestamp: readU32(bytes, F.timestamp),
    creatorApplication: readAscii(bytes, F.creatorApplication),
    creatorVersion: readU32(bytes, F.creatorVersion),
    creatorHostOs: readU32(bytes, F.creatorHostOs),
    originalSize: readU64(bytes, F.originalSize, fileOffset, 'original size'),
    currentSize: readU64(bytes, F.currentSize, fileOffset, 'current size'),
    geometry: { cylinders: geometry >>> 16, heads: (geometry >>> 8) & 0xff, sectorsPerTrack: geometry & 0xff },
    diskType: readU32(bytes, F.diskType),
    checksum,
    uniqueId: readBytes(bytes, F.uniqueId),
    savedState: bytes.readUInt8(F.savedState.offset),
  }
}

/** The 512 bytes of a footer, with its checksum computed (the `checksum` field is ignored). */
export function encodeFooter(footer: VhdFooter): Buffer {
  const bytes = Buffer.alloc(FOOTER_SIZE)
  writeAscii(bytes, F.cookie, footer.cookie)
  writeU32(bytes, F.features, footer.features)
  writeU32(bytes, F.fileFormatVersion, footer.fileFormatVersion)
  writeU64(bytes, F.dataOffset, footer.dataOffset)
  writeU32(bytes, F.timestamp, footer.timestamp)
  writeAscii(bytes, F.creatorApplication, footer.creatorApplication)
  writeU32(bytes, F.creatorVersion, footer.creatorVersion)
  writeU32(bytes, F.creatorHostOs, footer.creatorHostOs)
  writeU64(bytes, F.originalSize, footer.originalSize)
  writeU64(bytes, F.currentSize, footer.currentSize)
  const { cylinders, heads, sectorsPerTrack } = footer.geometry
  writeU32(bytes, F.geometry, ((cylinders & 0xffff) << 16) | ((heads & 0xff) << 8) | (sectorsPerTrack & 0xff))
  writeU32(bytes, F.diskType, footer.diskType)
  writeBytes(bytes, F.uniqueId, footer.uniqueId)
  bytes.writeUInt8(footer.savedState, F.savedState.offset)
  writeU32(bytes, F.checksum, vhdChecksum(bytes, F.checksum))
  return bytes
}
