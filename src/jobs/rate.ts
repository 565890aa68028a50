import { UsageError } from '../errors.js'

const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
}

/**
 * Parses a transfer rate into bytes per second. Units are binary and case-insensitive: `K` = KiB,
 * `M` = MiB, `G` = GiB, `T` = TiB; an optional `i`, `B` and `/s` are accepted, so `50M`, `50MiB`
 * and `50MiB/s` all mean 52 428 800 bytes/s. A bare number is bytes per second.
 * @throws UsageError `INVALID_RATE`
 */
export function parseRate(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)(\/s)?\s*$/i.exec(text)
  const unit = match?.[2]?.toLowerCase()
  // "50i" or "50iB" without a unit letter is not a rate
  if (match === null || unit === undefined || (unit === '' && match[3] !== '')) {
    throw new UsageError(
      'INVALID_RATE',
      `rate "${text}" is not valid; use bytes per second with a binary unit, e.g. 50M (MiB/s)`,
    )
  }
  const bytes = Math.floor(Number(match[1]) * (UNITS[unit] ?? 1))
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new UsageError('INVALID_RATE', `rate "${text}" must be at least 1 byte per second`)
  }
  return bytes
}

/** `1.5 GiB`, `512 B`: binary units, as rates and sizes are parsed. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let value = bytes
  let index = 0
  while (Math.abs(value) >= 1024 && index < units.length - 1) {
    value /= 1024
    index++
  }
  const text = index === 0 || Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1)
  return `${text} ${units[index] ?? 'B'}`
}

/** `50 MiB/s`. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`
}
