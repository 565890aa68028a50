import { describe, expect, it } from 'vitest'
import { vhdChecksum } from './checksum.js'
import { vhdGeometry } from './geometry.js'
import { FOOTER_FIELDS } from './layout.js'
import { fromVhdTimestamp, toVhdTimestamp } from './timestamp.js'
import { uuidFromBytes, uuidToBytes } from './uuid.js'

describe('VHD structures', () => {
  it('computes CHS geometry as the specification appendix does', () => {
    // 20 MiB: 40960 sectors, 17 per track, 2409 cylinders×heads → 4 heads, 602 cylinders
    expect(vhdGeometry(20 * 1024 * 1024)).toEqual({ cylinders: 602, heads: 4, sectorsPerTrack: 17 })
    // 1 GiB needs the 63-sector branch: 2097152/63 = 33288 → 16 heads, 2080 cylinders
    expect(vhdGeometry(1024 ** 3)).toEqual({ cylinders: 2080, heads: 16, sectorsPerTrack: 63 })
    // past 65535×16×63 sectors: 255 sectors per track, capped at 65535 cylinders
    expect(vhdGeometry(2040 * 1024 ** 3)).toEqual({ cylinders: 65535, heads: 16, sectorsPerTrack: 255 })
  })

  it('sums every byte but the checksum field and complements', () => {
    const bytes = Buffer.alloc(512)
    bytes[0] = 1
    bytes[FOOTER_FIELDS.checksum.offset] = 0xff
    bytes[511] = 2
    expect(vhdChecksum(bytes, FOOTER_FIELDS.checksum)).toBe(~3 >>> 0)
  })

  it('counts time from 2000-01-01 UTC and converts UUIDs both ways', () => {
    expect(toVhdTimestamp(new Date('2000-01-01T00:00:10Z'))).toBe(10)
    expect(fromVhdTimestamp(86400).toISOString()).toBe('2000-01-02T00:00:00.000Z')
    const uuid = 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6'
    expect(uuidFromBytes(uuidToBytes(uuid))).toBe(uuid)
  })
})
