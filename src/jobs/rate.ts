import bytes from 'bytes'
import { UsageError } from '../errors.js'

/**
 * Parses a transfer rate into bytes per second. Units are binary and case-insensitive: `K` = KiB,
 * `M` = MiB, `G` = GiB, `T` = TiB; an optional `i`, `B` and `/s` are accepted, so `50M`, `50MiB`
 * and `50MiB/s` all mean 52 428 800 bytes/s. A bare number is bytes per second.
 *
 * The syntax is checked here and only the arithmetic is `bytes.parse`'s: it reads `kb`…`tb` as
 * powers of 1024 (our binary semantics), but takes neither `M` alone, `MiB` nor `/s`, and falls
 * back to `parseInt` on anything else (`50M` would be 50 bytes, `5X` 5) — so it is handed the
 * canonical `<number><unit>b` form of a rate already known to be valid.
 * @throws UsageError `INVALID_RATE`
 */
export function parseRate(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)(\/s)?\s*$/i.exec(text)
  const number = match?.[1]
  const unit = match?.[2]?.toLowerCase()
  // "50i" or "50iB" without a unit letter is not a rate
  if (number === undefined || unit === undefined || (unit === '' && match?.[3] !== '')) {
    throw new UsageError(
      'INVALID_RATE',
      `rate "${text}" is not valid; use bytes per second with a binary unit, e.g. 50M (MiB/s)`,
    )
  }
  // A bare number has no unit bytes knows: it goes through its parseInt path, which floors.
  const rate = bytes.parse(unit === '' ? number : `${number}${unit}b`)
  if (rate === null || !Number.isSafeInteger(rate) || rate < 1) {
    throw new UsageError('INVALID_RATE', `rate "${text}" must be at least 1 byte per second`)
  }
  return rate
}

/**
 * `1.5 GiB`, `512 B`: binary units, as rates and sizes are parsed. Not `bytes.format`: it names
 * the same 1024 steps `KB`/`MB`/`GB` where xen-cr (like XAPI and XO) prints `KiB`/`MiB`/`GiB`,
 * and it either trims or pads every fraction, where progress lines keep two decimals below 10
 * and one above, and none for a whole value (`2 MiB`, `1.50 GiB`, `12.3 GiB`).
 */
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
