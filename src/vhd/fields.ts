import { VhdError } from '../errors.js'
import type { VhdField } from './layout.js'

/** How a 64-bit offset of all ones (the format's "none") reads: -1. */
export const NO_OFFSET = -1

const ALL_ONES_64 = 0xffffffffffffffffn

export function readU32(structure: Buffer, field: VhdField): number {
  return structure.readUInt32BE(field.offset)
}

export function writeU32(structure: Buffer, field: VhdField, value: number): void {
  structure.writeUInt32BE(value >>> 0, field.offset)
}

/** A 64-bit size or offset; all ones is {@link NO_OFFSET}; anything past 2^53 is refused. */
export function readU64(structure: Buffer, field: VhdField, structureOffset: number, name: string): number {
  const value = structure.readBigUInt64BE(field.offset)
  if (value === ALL_ONES_64) return NO_OFFSET
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new VhdError('VHD_BAD_VALUE', `VHD ${name} ${value} is out of range`, structureOffset + field.offset)
  }
  return Number(value)
}

export function writeU64(structure: Buffer, field: VhdField, value: number): void {
  structure.writeBigUInt64BE(value === NO_OFFSET ? ALL_ONES_64 : BigInt(value), field.offset)
}

export function readAscii(structure: Buffer, field: VhdField): string {
  return structure.toString('latin1', field.offset, field.offset + field.size)
}

export function writeAscii(structure: Buffer, field: VhdField, value: string): void {
  structure.fill(0, field.offset, field.offset + field.size)
  structure.write(value.slice(0, field.size), field.offset, 'latin1')
}

export function readBytes(structure: Buffer, field: VhdField): Buffer {
  return Buffer.from(structure.subarray(field.offset, field.offset + field.size))
}

export function writeBytes(structure: Buffer, field: VhdField, value: Buffer): void {
  structure.fill(0, field.offset, field.offset + field.size)
  value.copy(structure, field.offset, 0, Math.min(value.length, field.size))
}
