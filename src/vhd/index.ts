// The VHD format in one import: structures, the streaming reader, the writer and the normaliser.
export {
  VHD_BLOCK_SIZE,
  SECTOR_SIZE,
  FOOTER_SIZE,
  HEADER_SIZE,
  BAT_UNUSED,
  DISK_TYPE_DYNAMIC,
  DISK_TYPE_DIFFERENCING,
  bitmapSize,
  canonicalLayout,
} from './layout.js'
export type { CanonicalLayout, VhdField } from './layout.js'
export { decodeFooter, encodeFooter } from './footer.js'
export type { VhdFooter } from './footer.js'
export { decodeHeader, encodeHeader } from './header.js'
export type { VhdHeader, VhdParentLocator } from './header.js'
export { vhdGeometry } from './geometry.js'
export type { VhdGeometry } from './geometry.js'
export { vhdChecksum } from './checksum.js'
export { toVhdTimestamp, fromVhdTimestamp } from './timestamp.js'
export { uuidToBytes, uuidFromBytes } from './uuid.js'
export { readVhd } from './reader.js'
export type { VhdItem } from './reader.js'
export { createVhdStream } from './writer.js'
export type { VhdBlockSource } from './writer.js'
export { normaliseVhd } from './normalise.js'
