/**
 * The VHD on-disk layout, declared once: every field of the footer, the dynamic header and a
 * parent locator entry as (offset, size), the constants of the format, and the arithmetic of
 * the canonical layout that both the writer and the normaliser emit.
 */

/** One field of a fixed-size VHD structure. */
export interface VhdField {
  readonly offset: number
  readonly size: number
}

export const SECTOR_SIZE = 512
/** Block size of every VHD we write and of the lab's storage: 2 MiB. */
export const VHD_BLOCK_SIZE = 2 * 1024 * 1024
export const FOOTER_SIZE = 512
export const HEADER_SIZE = 1024
export const PARENT_LOCATOR_SIZE = 24
export const PARENT_LOCATOR_COUNT = 8
/** BAT entry of a block that is not in the file. */
export const BAT_UNUSED = 0xffffffff
/** VHD's epoch: 2000-01-01T00:00:00Z, in Unix seconds. */
export const VHD_EPOCH_UNIX = 946_684_800
/** The largest virtual size the format (and XAPI) allows: 2040 GiB. */
export const VHD_MAX_SIZE = 2040 * 1024 * 1024 * 1024

export const FOOTER_COOKIE = 'conectix'
export const HEADER_COOKIE = 'cxsparse'
export const VHD_VERSION = 0x00010000
/** Bit 0x2 of `features` is reserved and must be set. */
export const FEATURES_RESERVED = 0x00000002

export const DISK_TYPE_FIXED = 2
export const DISK_TYPE_DYNAMIC = 3
export const DISK_TYPE_DIFFERENCING = 4

export const PLATFORM_NONE = 0
export const PLATFORM_MACX = 0x4d616358

/** Hard disk footer (reference §6.1). */
export const FOOTER_FIELDS = {
  cookie: { offset: 0, size: 8 },
  features: { offset: 8, size: 4 },
  fileFormatVersion: { offset: 12, size: 4 },
  dataOffset: { offset: 16, size: 8 },
  timestamp: { offset: 24, size: 4 },
  creatorApplication: { offset: 28, size: 4 },
  creatorVersion: { offset: 32, size: 4 },
  creatorHostOs: { offset: 36, size: 4 },
  originalSize: { offset: 40, size: 8 },
  currentSize: { offset: 48, size: 8 },
  geometry: { offset: 56, size: 4 },
  diskType: { offset: 60, size: 4 },
  checksum: { offset: 64, size: 4 },
  uniqueId: { offset: 68, size: 16 },
  savedState: { offset: 84, size: 1 },
  reserved: { offset: 85, size: 427 },
} as const satisfies Record<string, VhdField>

/** Dynamic disk header (reference §6.2). */
export const HEADER_FIELDS = {
  cookie: { offset: 0, size: 8 },
  dataOffset: { offset: 8, size: 8 },
  tableOffset: { offset: 16, size: 8 },
  headerVersion: { offset: 24, size: 4 },
  maxTableEntries: { offset: 28, size: 4 },
  blockSize: { offset: 32, size: 4 },
  checksum: { offset: 36, size: 4 },
  parentUniqueId: { offset: 40, size: 16 },
  parentTimestamp: { offset: 56, size: 4 },
  reserved1: { offset: 60, size: 4 },
  parentUnicodeName: { offset: 64, size: 512 },
  parentLocators: { offset: 576, size: PARENT_LOCATOR_SIZE * PARENT_LOCATOR_COUNT },
  reserved2: { offset: 768, size: 256 },
} as const satisfies Record<string, VhdField>

/** One parent locator entry, relative to its own start. */
export const PARENT_LOCATOR_FIELDS = {
  platformCode: { offset: 0, size: 4 },
  platformDataSpace: { offset: 4, size: 4 },
  platformDataLength: { offset: 8, size: 4 },
  reserved: { offset: 12, size: 4 },
  platformDataOffset: { offset: 16, size: 8 },
} as const satisfies Record<string, VhdField>

// Checked at load: a typo in a table above must fail loudly here, not corrupt a disk later.
checkContiguous('footer', FOOTER_FIELDS, FOOTER_SIZE)
checkContiguous('dynamic header', HEADER_FIELDS, HEADER_SIZE)
checkContiguous('parent locator', PARENT_LOCATOR_FIELDS, PARENT_LOCATOR_SIZE)

function checkContiguous(name: string, fields: Record<string, VhdField>, size: number): void {
  let expected = 0
  for (const [field, { offset, size: length }] of Object.entries(fields)) {
    if (offset !== expected) throw new Error(`VHD layout: ${name} field ${field} is at ${offset}, expected ${expected}`)
    expected += length
  }
  if (expected !== size) throw new Error(`VHD layout: ${name} fields cover ${expected} bytes, expected ${size}`)
}

/** Bytes of a block's sector bitmap: one bit per sector, rounded up to whole sectors. */
export function bitmapSize(blockSize: number): number {
  return Math.ceil(blockSize / SECTOR_SIZE / 8 / SECTOR_SIZE) * SECTOR_SIZE
}

/** Bytes the BAT occupies on disk: 4 per entry, padded to a whole sector. */
export function batSize(entries: number): number {
  return Math.ceil((entries * 4) / SECTOR_SIZE) * SECTOR_SIZE
}

/** Where everything sits in the canonical layout (reference §5.2). */
export interface CanonicalLayout {
  readonly headerOffset: number
  readonly tableOffset: number
  readonly batBytes: number
  readonly firstBlockOffset: number
  /** bitmap + data of one block */
  readonly blockStride: number
  readonly trailingFooterOffset: number
  /** total bytes of the file */
  readonly length: number
}

/**
 * The layout vhd-tool emits: footer copy, header at 512, a reserved sector at 1536, BAT at 2048,
 * then the blocks back to back, then the footer. Known from the counts alone, so a stream's
 * length is fixed before its first byte.
 */
export function canonicalLayout(entries: number, blockSize: number, blockCount: number): CanonicalLayout {
  const tableOffset = FOOTER_SIZE + HEADER_SIZE + SECTOR_SIZE
  const batBytes = batSize(entries)
  const firstBlockOffset = tableOffset + batBytes
  const blockStride = bitmapSize(blockSize) + blockSize
  const trailingFooterOffset = firstBlockOffset + blockCount * blockStride
  return {
    headerOffset: FOOTER_SIZE,
    tableOffset,
    batBytes,
    firstBlockOffset,
    blockStride,
    trailingFooterOffset,
    length: trailingFooterOffset + FOOTER_SIZE,
  }
}
