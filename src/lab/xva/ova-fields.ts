/**
 * Reading the `snapshot` struct of an ova.xml object into the lab's stored values, field by
 * field as the class's schema declares them. What does not fit its declared type is
 * `XVA_BAD_METADATA`: XAPI's import fails to unmarshal such a record too.
 */
import { NULL_REF } from '../db/database.js'
import type { ClassSpec, FieldSpec, StoredValue } from '../db/schema.js'
import { XvaFormatError } from '../lab-error.js'
import { formatXapiDate, type DecodedValue } from '../wire/values.js'
import type { OvaObject } from './ova-xml.js'

function badField(where: string, field: string, kind: string): XvaFormatError {
  return new XvaFormatError('XVA_BAD_METADATA', `ova.xml: ${where}.${field} is not a ${kind}`, 0)
}

/** The lab's stored form of a decoded ova.xml field of this type. */
function stored(field: FieldSpec, value: DecodedValue, where: string): StoredValue {
  const bad = (): never => {
    throw badField(where, field.name, field.type.kind)
  }
  const asString = (v: DecodedValue): string =>
    typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : bad()
  switch (field.type.kind) {
    case 's':
    case 'r':
      return asString(value)
    case 'i':
    case 'f': {
      const n =
        typeof value === 'number'
          ? value
          : typeof value === 'string' && value.trim() !== ''
            ? Number(value)
            : Number.NaN
      return Number.isFinite(n) ? n : bad()
    }
    case 'b':
      return typeof value === 'boolean'
        ? value
        : value === 'true' || value === '1'
          ? true
          : value === 'false' || value === '0'
            ? false
            : bad()
    case 'd':
      return value instanceof Date ? formatXapiDate(value) : asString(value)
    case 'ss':
    case 'sr':
      return Array.isArray(value) ? value.map(asString) : bad()
    case 'si':
      return Array.isArray(value) ? value.map(v => Number(asString(v))) : bad()
    case 'm': {
      if (
        typeof value !== 'object' ||
        value === null ||
        Array.isArray(value) ||
        value instanceof Date ||
        Buffer.isBuffer(value)
      )
        return bad()
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, asString(v)]))
    }
    case 'rel':
      return bad()
  }
}

/** The stored fields of the class that the snapshot carries (computed set fields left out). */
export function fieldsOf(spec: ClassSpec, object: OvaObject<DecodedValue>): Record<string, StoredValue> {
  const out: Record<string, StoredValue> = {}
  for (const field of spec.fields) {
    const value = object.snapshot[field.name]
    if (field.type.kind === 'rel' || value === undefined || value === null) continue
    out[field.name] = stored(field, value, `${spec.name} ${object.id}`)
  }
  return out
}

/** A string field read by {@link fieldsOf}, `fallback` when the snapshot does not carry it. */
export function stringOr(
  fields: Readonly<Record<string, StoredValue>>,
  name: string,
  fallback: string,
  where: string,
): string {
  const value = fields[name]
  if (value === undefined) return fallback
  if (typeof value !== 'string') throw badField(where, name, 's')
  return value
}

/**
 * The export id (`Ref:3`) a reference field of an ova.xml object holds, `OpaqueRef:NULL` when
 * it is unset.
 */
export function exportRef(object: OvaObject<DecodedValue>, field: string): string {
  const value = object.snapshot[field]
  if (value === undefined || value === null) return NULL_REF
  if (typeof value !== 'string') throw badField(`${object.cls} ${object.id}`, field, 'r')
  return value
}
