/**
 * Reading the record a `create` message takes: each member is unmarshalled to its declared
 * type; a required member that is missing or mistyped is `FIELD_TYPE_ERROR [member]`, as XAPI's
 * record unmarshaller reports it.
 */
import { xapiFault } from '../fault.js'
import type { StoredValue } from '../db/schema.js'
import { formatXapiDate, type DecodedValue } from '../wire/values.js'
import { coerce, type Arg, type ParamType } from './registry.js'

export type MemberSpec = readonly [name: string, type: ParamType]

/**
 * Unmarshals `required` members (all must be present) and `optional` ones (taken when present),
 * returning stored values keyed by member name.
 */
export function readStruct(
  struct: Arg,
  required: readonly MemberSpec[],
  optional: readonly MemberSpec[] = [],
): Record<string, StoredValue> {
  const source = struct as Readonly<Record<string, DecodedValue>>
  const out: Record<string, StoredValue> = {}
  const read = ([name, type]: MemberSpec, mustExist: boolean): void => {
    const value = source[name]
    if (value === undefined) {
      if (mustExist) throw xapiFault('FIELD_TYPE_ERROR', name)
      return
    }
    let coerced: Arg
    try {
      coerced = coerce(type, value)
    } catch {
      throw xapiFault('FIELD_TYPE_ERROR', name)
    }
    out[name] = coerced instanceof Date ? formatXapiDate(coerced) : (coerced as StoredValue)
  }
  for (const member of required) read(member, true)
  for (const member of optional) read(member, false)
  return out
}

/**
 * A string member of a create record (read by {@link readStruct}, or built by the lab itself);
 * `FIELD_TYPE_ERROR [member]` when it is missing or not a string, as XAPI's unmarshaller says.
 */
export function stringMember(fields: Readonly<Record<string, StoredValue>>, name: string): string {
  const value = fields[name]
  if (typeof value !== 'string') throw xapiFault('FIELD_TYPE_ERROR', name)
  return value
}
