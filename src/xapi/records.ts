/**
 * Records read by query rather than by class: `<class>.get_all_records_where` and the
 * expressions of XAPI's filter language it takes. The language (xen-api `db_filter_parse.mly`)
 * has only equality between a database column and a literal, `and`, `or`, `not`: a map key
 * (`other_config:xo:backup:job`) cannot be matched, and a literal cannot hold a `"`. Columns are
 * database names (`name__label`), plus `_ref`, the object's own ref.
 */
import { UsageError } from '../errors.js'
import type { CallOptions, XapiClient } from './client.js'
import { normaliseRecord } from './normalise-record.js'
import type { RecordOf, Ref, XapiClassName } from './types.js'

/** A filter expression, built only by the functions of this module. */
export type WhereExpr = string & { readonly whereExpr: true }

function literal(value: string): string {
  // The lexer reads a literal up to the next `"`, with no escapes.
  if (value.includes('"'))
    throw new UsageError('INVALID_OPTION', `"${value}" cannot be matched by a XAPI filter: it contains a double quote`)
  return `"${value}"`
}

/** `field "<column>" = "<value>"`. */
export function fieldIs(column: string, value: string): WhereExpr {
  return `field ${literal(column)} = ${literal(value)}` as WhereExpr
}

/** Every expression holds (`true` when there is none). */
export function allOf(exprs: readonly WhereExpr[]): WhereExpr {
  // Parenthesised: `and` and `or` share one precedence in XAPI's grammar.
  return (exprs.length === 0 ? 'true' : exprs.map(e => `(${e})`).join(' and ')) as WhereExpr
}

/** At least one expression holds (`false` when there is none). */
export function anyOf(exprs: readonly WhereExpr[]): WhereExpr {
  return (exprs.length === 0 ? 'false' : exprs.map(e => `(${e})`).join(' or ')) as WhereExpr
}

/** The column equals one of `values` (`false` for none). */
export function fieldIn(column: string, values: Iterable<string>): WhereExpr {
  return anyOf([...new Set(values)].map(v => fieldIs(column, v)))
}

/**
 * The objects of class `cls` for which `expr` holds, by ref, typed and normalised. An
 * expression that cannot hold (`false`) costs no call.
 */
export async function getAllRecordsWhere<C extends XapiClassName>(
  client: XapiClient,
  cls: C,
  expr: WhereExpr,
  options: CallOptions = {},
): Promise<Map<Ref<C>, RecordOf<C>>> {
  const records = new Map<Ref<C>, RecordOf<C>>()
  if (expr === 'false') return records
  const raw = await client.call<Record<string, unknown>>(`${cls}.get_all_records_where`, [expr], options)
  for (const [ref, record] of Object.entries(raw)) records.set(ref as Ref<C>, normaliseRecord(cls, record))
  return records
}

/** The records of these refs in one call (refs that name nothing are left out). */
export function getRecordsByRef<C extends XapiClassName>(
  client: XapiClient,
  cls: C,
  refs: Iterable<string>,
  options: CallOptions = {},
): Promise<Map<Ref<C>, RecordOf<C>>> {
  return getAllRecordsWhere(client, cls, fieldIn('_ref', refs), options)
}
