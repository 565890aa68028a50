import { randomUUID } from 'node:crypto'

/** The 16 bytes of a UUID string (`xxxxxxxx-xxxx-…`), as VHD unique-id fields hold it. */
export function uuidToBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '')
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new TypeError(`not a UUID: ${uuid}`)
  return Buffer.from(hex, 'hex')
}

export function uuidFromBytes(bytes: Buffer): string {
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`
}

export function randomUuidBytes(): Buffer {
  return uuidToBytes(randomUUID())
}
