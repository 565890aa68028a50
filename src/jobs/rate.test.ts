import { describe, expect, it } from 'vitest'
import { UsageError } from '../errors.js'
import { formatBytes, formatRate, parseRate } from './rate.js'

describe('parseRate', () => {
  it.each([
    ['50M', 50 * 1024 ** 2],
    ['50MiB', 50 * 1024 ** 2],
    ['50MiB/s', 50 * 1024 ** 2],
    ['50mb', 50 * 1024 ** 2],
    ['800K', 800 * 1024],
    ['1.5G', 1.5 * 1024 ** 3],
    ['1T', 1024 ** 4],
    ['4096', 4096],
    ['4096B/s', 4096],
  ])('reads %s as %i bytes/s', (text, bytes) => {
    expect(parseRate(text)).toBe(bytes)
  })

  it.each(['', 'fast', '0', '0.1', '-5M', '5X', '5i', 'M'])('refuses "%s"', text => {
    expect(() => parseRate(text)).toThrow(UsageError)
  })
})

describe('formatBytes', () => {
  it('uses binary units', () => {
    expect(formatBytes(512)).toBe('512 B')
    expect(formatBytes(2 * 1024 ** 2)).toBe('2 MiB')
    expect(formatBytes(1.5 * 1024 ** 3)).toBe('1.50 GiB')
    expect(formatRate(50 * 1024 ** 2)).toBe('50 MiB/s')
  })
})
