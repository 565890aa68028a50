/**
 * XAPI's filter language for `<class>.get_all_records_where`, as xen-api's database implements
 * it (`ocaml/database/db_filter_lex.mll`, `db_filter_parse.mly`, `db_filter.ml`):
 *
 *   expr  := value "=" value | expr "and" expr | expr "or" expr | "not" expr | "true" | "false" | "(" expr ")"
 *   value := "\"" chars "\"" (a literal) | "field" "\"" column "\"" (a column of the row)
 *
 * Quirks kept on purpose, so a client that works here works on a host: `and` and `or` have the
 * same precedence and group to the left (`a or b and c` is `(a or b) and c`); `not` binds more
 * loosely than both (`not a and b` is `not (a and b)`); literals have no escapes (a `"` cannot be
 * written); equality is the only comparison and compares strings: a column's value is its
 * marshalled database form (`"true"`, `"42"`, a ref, `('a' 'b')` for a set, `(('k' 'v'))` for a
 * map), so `field "other_config:key"` does not exist and a map key cannot be matched. Columns
 * are database names: `name__label` (not `name_label`), `_ref` the object's own ref. An unknown
 * column fails the call as the host does.
 */
import { xapiFault } from '../fault.js'
import type { ClassSpec, StoredValue } from './schema.js'

export type FilterValue = { readonly kind: 'field' | 'literal'; readonly text: string }

export type FilterExpr =
  | { readonly kind: 'true' | 'false' }
  | { readonly kind: 'not'; readonly expr: FilterExpr }
  | { readonly kind: 'and' | 'or'; readonly left: FilterExpr; readonly right: FilterExpr }
  | { readonly kind: 'eq'; readonly left: FilterValue; readonly right: FilterValue }

type Token =
  | { readonly kind: '=' | '(' | ')' | 'true' | 'false' | 'field' | 'and' | 'or' | 'not' | 'eof' }
  | { readonly kind: 'ident'; readonly text: string }

const KEYWORDS = ['true', 'false', 'field', 'and', 'or', 'not'] as const

/** The host answers an expression it cannot parse with this failure (`Db_filter.Expression_error`). */
function expressionError(expr: string, why: string): Error {
  return xapiFault('INTERNAL_ERROR', `Db_filter.Expression_error("${expr}", ${why})`)
}

function tokenise(expr: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  outer: while (i < expr.length) {
    const c = expr[i]!
    if (c === ' ' || c === '\t' || c === '\n') {
      i++
      continue
    }
    if (c === '=' || c === '(' || c === ')') {
      tokens.push({ kind: c })
      i++
      continue
    }
    if (c === '"') {
      const end = expr.indexOf('"', i + 1)
      if (end < 0) throw expressionError(expr, 'Failure("lexing: empty token")')
      tokens.push({ kind: 'ident', text: expr.slice(i + 1, end) })
      i = end + 1
      continue
    }
    for (const word of KEYWORDS) {
      if (expr.startsWith(word, i)) {
        tokens.push({ kind: word })
        i += word.length
        continue outer
      }
    }
    throw expressionError(expr, 'Failure("lexing: empty token")')
  }
  tokens.push({ kind: 'eof' })
  return tokens
}

/** Parses `expr`; a malformed one fails as `Parsing.Parse_error` does on a host. */
export function parseFilter(expr: string): FilterExpr {
  const tokens = tokenise(expr)
  let at = 0
  const peek = (): Token => tokens[at]!
  const fail = (): never => {
    throw expressionError(expr, 'Parsing.Parse_error')
  }
  const take = (kind: Token['kind']): Token => (peek().kind === kind ? tokens[at++]! : fail())

  const value = (): FilterValue => {
    if (peek().kind === 'field') {
      at++
      const name = take('ident') as { text: string }
      return { kind: 'field', text: name.text }
    }
    const literal = take('ident') as { text: string }
    return { kind: 'literal', text: literal.text }
  }
  // `not` is the loosest: it takes the whole and/or chain to its right.
  const expression = (): FilterExpr => {
    if (peek().kind === 'not') {
      at++
      return { kind: 'not', expr: expression() }
    }
    let left = operand()
    for (;;) {
      const op = peek().kind
      if (op !== 'and' && op !== 'or') return left
      at++
      const right = peek().kind === 'not' ? expression() : operand()
      left = { kind: op, left, right }
    }
  }
  const operand = (): FilterExpr => {
    const token = peek()
    switch (token.kind) {
      case 'true':
      case 'false':
        at++
        return { kind: token.kind }
      case '(': {
        at++
        const inner = expression()
        take(')')
        return inner
      }
      default: {
        const left = value()
        take('=')
        return { kind: 'eq', left, right: value() }
      }
    }
  }
  const parsed = expression()
  take('eof')
  return parsed
}

/** Namespaced fields: the API's `name_label` is the database's `name__label`. */
const VM_NAMESPACES = ['memory_', 'VCPUs_', 'PV_', 'HVM_', 'actions_']

function columnOf(spec: ClassSpec, field: string): string {
  if (field === 'name_label' || field === 'name_description') return field.replace('_', '__')
  if (spec.name === 'VM' && field !== 'memory_overhead' && VM_NAMESPACES.some(p => field.startsWith(p)))
    return field.replace('_', '__')
  return field
}

/** SExpr as the database writes it (`sexpr.ml`): nodes in parentheses, space-separated; strings in `'`, backslash escapes. */
const sexprString = (s: string): string => `'${s.replace(/[\\']/g, c => `\\${c}`)}'`

function marshal(value: StoredValue): string {
  if (typeof value === 'string') return value
  if (typeof value === 'boolean') return value ? 'true' : 'false'
  if (typeof value === 'number') return String(value)
  if (Array.isArray(value))
    return `(${(value as readonly (string | number)[]).map(v => sexprString(String(v))).join(' ')})`
  const map = value as Readonly<Record<string, string>>
  return `(${Object.entries(map)
    .map(([k, v]) => `(${sexprString(k)} ${sexprString(v)})`)
    .join(' ')})`
}

/** A field's value of one object, computed set fields (`VM.VBDs`) included. */
export type FieldReader = (field: string) => StoredValue | undefined

/** A predicate over the objects of one class, each given by its ref and a reader of its fields. */
export function compileFilter(spec: ClassSpec, expr: string): (ref: string, read: FieldReader) => boolean {
  return compileParsed(spec, parseFilter(expr))
}

/**
 * An equality every object matching a filter meets at least one of: `field` (a stored field, or
 * `_ref` for the object's own ref) holds `value`.
 */
export interface FilterKey {
  readonly field: string
  readonly value: string
}

/**
 * {@link compileFilter}, plus `keys` when the filter can only hold where one of these
 * equalities does (`field "_ref" = "…" or …`, `field "VM" = "…"`): a database with an index
 * on those fields need test only the objects they name, not the whole class. Only the left of
 * an `and` narrows: the host evaluates it first, so an unknown column on the right fails the
 * call only for objects the left admits, which the narrowing keeps.
 */
export function compileQuery(
  spec: ClassSpec,
  expr: string,
): { readonly matches: (ref: string, read: FieldReader) => boolean; readonly keys: readonly FilterKey[] | undefined } {
  const parsed = parseFilter(expr)
  const columns = columnsOf(spec)
  const keysOf = (e: FilterExpr): FilterKey[] | undefined => {
    switch (e.kind) {
      case 'eq': {
        const [column, literal] =
          e.left.kind === 'field' && e.right.kind === 'literal'
            ? [e.left, e.right]
            : e.right.kind === 'field' && e.left.kind === 'literal'
              ? [e.right, e.left]
              : [undefined, undefined]
        if (column === undefined) return undefined
        const field = columns.get(column.text)
        // a computed set compares as its marshalled list, never as one ref
        if (field === undefined || (field !== '_ref' && spec.byName.get(field)?.type.kind === 'rel')) return undefined
        return [{ field, value: literal.text }]
      }
      case 'or': {
        const left = keysOf(e.left)
        const right = left === undefined ? undefined : keysOf(e.right)
        return left === undefined || right === undefined ? undefined : [...left, ...right]
      }
      case 'and':
        return keysOf(e.left)
      default:
        return undefined
    }
  }
  return { matches: compileParsed(spec, parsed), keys: keysOf(parsed) }
}

/** Database column → field name, `_ref` included. */
function columnsOf(spec: ClassSpec): Map<string, string> {
  const columns = new Map<string, string>([['_ref', '_ref']])
  for (const field of spec.fields) columns.set(columnOf(spec, field.name), field.name)
  return columns
}

function compileParsed(spec: ClassSpec, parsed: FilterExpr): (ref: string, read: FieldReader) => boolean {
  const columns = columnsOf(spec)
  const lookup = (v: FilterValue, ref: string, read: FieldReader): string => {
    if (v.kind === 'literal') return v.text
    if (v.text === '_ref') return ref
    const field = columns.get(v.text)
    // Row.find of a column the table lacks: DBCache_NotFound, which the host answers as an internal error.
    if (field === undefined)
      throw xapiFault('INTERNAL_ERROR', `Db_exn.DBCache_NotFound("missing field", "${v.text}", "")`)
    return marshal(read(field) ?? '')
  }
  const evaluate = (e: FilterExpr, ref: string, read: FieldReader): boolean => {
    switch (e.kind) {
      case 'true':
        return true
      case 'false':
        return false
      case 'not':
        return !evaluate(e.expr, ref, read)
      case 'and':
        return evaluate(e.left, ref, read) && evaluate(e.right, ref, read)
      case 'or':
        return evaluate(e.left, ref, read) || evaluate(e.right, ref, read)
      case 'eq':
        return lookup(e.left, ref, read) === lookup(e.right, ref, read)
    }
  }
  return (ref, read) => evaluate(parsed, ref, read)
}
