import { INT_FIELDS, type RecordOf, type XapiClassName, type XapiDateTime } from './types.js'

/** A `Date` in XAPI's datetime form, `20241103T10:20:30Z` (UTC, no fraction). */
export function formatXapiDateTime(date: Date): XapiDateTime {
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0')
  return (
    `${pad(date.getUTCFullYear(), 4)}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}` +
    `T${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}Z`
  )
}

/**
 * Makes a value received over either transport look the same: the XML-RPC parser turns
 * `dateTime.iso8601` into `Date`s, which would then be sent back as dates where XAPI expects
 * strings (reference §8.16) — so every `Date` becomes the XAPI string JSON-RPC would have sent.
 */
export function normaliseValue(value: unknown): unknown {
  if (value instanceof Date) {
    return formatXapiDateTime(value)
  }
  if (Array.isArray(value)) {
    return value.map(normaliseValue)
  }
  if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value)) {
    const out: Record<string, unknown> = {}
    for (const [key, entry] of Object.entries(value)) {
      out[key] = normaliseValue(entry)
    }
    return out
  }
  return value
}

/**
 * A record as received from `get_record`, `get_all_records` or an event snapshot, with the
 * datamodel's int fields as numbers (XML-RPC carries them as bare strings) and datetimes as
 * XAPI strings. The result is frozen.
 */
export function normaliseRecord<C extends XapiClassName>(cls: C, raw: unknown): RecordOf<C> {
  const record = normaliseValue(raw) as Record<string, unknown>
  for (const field of INT_FIELDS[cls] as readonly string[]) {
    const value = record[field]
    if (typeof value === 'string' && value !== '') {
      record[field] = Number(value)
    }
  }
  return Object.freeze(record) as unknown as RecordOf<C>
}
