import type { VhdField } from './layout.js'

/**
 * VHD checksum of a footer or header (reference §6.4): the one's complement of the 32-bit sum
 * of every byte, the checksum field itself counted as zero.
 */
export function vhdChecksum(structure: Buffer, checksumField: VhdField): number {
  let sum = 0
  const skipEnd = checksumField.offset + checksumField.size
  for (let i = 0; i < structure.length; i++) {
    if (i >= checksumField.offset && i < skipEnd) continue
    sum = (sum + (structure[i] as number)) >>> 0
  }
  return ~sum >>> 0
}
