/**
 * The typed value model the lab puts on the wire. XML-RPC needs to know more than JSON does:
 * XAPI writes ints as bare strings, floats as `<double>`, datetimes as `<dateTime.iso8601>` and
 * only `valid_ref_counts` as `<i4>`, so the values that are not plain strings/ints/bools carry a
 * wrapper that says which encoding they take.
 */

/** A float (`<double>` in XML-RPC, a JSON number). */
export class WireFloat {
  constructor(readonly value: number) {}

  /** JSON-RPC sends the bare value (JSON.stringify calls this) */
  toJSON(): number {
    return this.value
  }
}

/** An int32 (`<i4>` in XML-RPC); XAPI sends these only in `event.from`'s `valid_ref_counts`. */
export class WireInt32 {
  constructor(readonly value: number) {}

  toJSON(): number {
    return this.value
  }
}

/** A datetime in XAPI's `YYYYMMDDTHH:MM:SSZ` form. */
export class WireDateTime {
  constructor(readonly value: string) {}

  toJSON(): string {
    return this.value
  }
}

/**
 * A value as the lab sends it: strings (also refs, uuids, enums), integers (JS numbers,
 * always integral), booleans, the wrappers above, arrays and structs.
 */
export type WireValue =
  | string
  | number
  | boolean
  | WireFloat
  | WireInt32
  | WireDateTime
  | readonly WireValue[]
  | { readonly [key: string]: WireValue }

/** The "unset" datetime XAPI uses (`VM.snapshot_time` of a non-snapshot, pending tasks). */
export const EPOCH = '19700101T00:00:00Z'

/** `YYYYMMDDTHH:MM:SSZ`: basic-format date, extended-format time, no fraction (reference §1.7). */
export function formatXapiDate(date: Date): string {
  const iso = date.toISOString() // 2024-11-03T10:20:30.123Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 19)}Z`
}

/** `%.16g` as XAPI prints floats: `0.5`, `1`, `60.1`. */
export function formatDouble(value: number): string {
  if (!Number.isFinite(value)) return String(value)
  return String(Number(value.toPrecision(16)))
}

/**
 * Values decoded from a request, before the dispatcher converts them to the declared parameter
 * types. XML-RPC `<double>` and int tags become numbers, `<dateTime.iso8601>` a {@link Date},
 * `<nil/>` null, an untyped `<value>` a string.
 */
export type DecodedValue =
  string | number | boolean | null | Date | Buffer | DecodedValue[] | { [key: string]: DecodedValue }
