import { SECTOR_SIZE } from './layout.js'

/** CHS geometry of the footer. */
export interface VhdGeometry {
  readonly cylinders: number
  readonly heads: number
  readonly sectorsPerTrack: number
}

/**
 * The CHS geometry the VHD specification's appendix derives from a size. Only old readers use
 * it (qemu for some creators derives the size from CHS, which rounds down), so `current_size`
 * stays the authority.
 */
export function vhdGeometry(size: number): VhdGeometry {
  const total = Math.min(Math.floor(size / SECTOR_SIZE), 65535 * 16 * 255)
  let sectorsPerTrack: number
  let heads: number
  let cylinderTimesHeads: number
  if (total >= 65535 * 16 * 63) {
    sectorsPerTrack = 255
    heads = 16
    cylinderTimesHeads = Math.floor(total / sectorsPerTrack)
  } else {
    sectorsPerTrack = 17
    cylinderTimesHeads = Math.floor(total / sectorsPerTrack)
    heads = Math.max(4, Math.floor((cylinderTimesHeads + 1023) / 1024))
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31
      heads = 16
      cylinderTimesHeads = Math.floor(total / sectorsPerTrack)
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63
      heads = 16
      cylinderTimesHeads = Math.floor(total / sectorsPerTrack)
    }
  }
  return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectorsPerTrack }
}
