import { describe, expect, it } from 'vitest'
import { isXapiFault } from '../fault.js'
import { compileFilter, compileQuery, parseFilter } from './filter-expr.js'
import { SCHEMA, type StoredValue } from './schema.js'

const VM = SCHEMA.get('VM')!

function matches(expr: string, fields: Record<string, StoredValue>, ref = 'OpaqueRef:1'): boolean {
  return compileFilter(VM, expr)(ref, name => fields[name])
}

function failure(run: () => unknown): { code: string; params: readonly string[] } {
  try {
    run()
  } catch (error) {
    if (isXapiFault(error)) return { code: error.code, params: error.params }
    throw error
  }
  throw new Error('expected a XAPI failure')
}

describe('get_all_records_where expressions (XAPI db_filter)', () => {
  it('compares columns with literals as strings: refs, booleans, database column names', () => {
    const vm = { uuid: 'u1', snapshot_of: 'OpaqueRef:9', is_a_snapshot: true, name_label: 'web' }
    expect(matches('field "snapshot_of" = "OpaqueRef:9"', vm)).toBe(true)
    expect(matches('field "is_a_snapshot" = "true"', vm)).toBe(true)
    expect(matches('field "is_a_snapshot" = "false"', vm)).toBe(false)
    expect(matches('field "name__label" = "web"', vm)).toBe(true)
    expect(matches('field "_ref" = "OpaqueRef:1"', vm)).toBe(true)
    expect(matches('"a" = "a"', vm)).toBe(true)
  })

  it('groups and/or to the left at one precedence, and not over the whole chain to its right', () => {
    // (true or true) and false: false; with and binding tighter it would be true.
    expect(matches('true or true and false', {})).toBe(false)
    // not (true and false): true; with not binding tighter it would be false.
    expect(matches('not true and false', {})).toBe(true)
    expect(parseFilter('not false and false')).toEqual({
      kind: 'not',
      expr: { kind: 'and', left: { kind: 'false' }, right: { kind: 'false' } },
    })
    expect(matches('(field "uuid" = "x" or field "uuid" = "u1") and not field "uuid" = "x"', { uuid: 'u1' })).toBe(true)
  })

  it('cannot reach a map key: other_config is one marshalled column, and other_config:key no column', () => {
    const vm = { uuid: 'u1', other_config: { 'xo:backup:job': 'j1' } }
    expect(matches('field "other_config" = "j1"', vm)).toBe(false)
    expect(matches(`field "other_config" = "(('xo:backup:job' 'j1'))"`, vm)).toBe(true)
    const missing = failure(() => matches('field "other_config:xo:backup:job" = "j1"', vm))
    expect(missing.code).toBe('INTERNAL_ERROR')
    expect(missing.params[0]).toContain('missing field')
    // The API name of a namespaced field is no column either.
    expect(failure(() => matches('field "name_label" = "web"', vm)).code).toBe('INTERNAL_ERROR')
  })

  it('refuses what the grammar does not have: other comparisons, quotes inside literals, trailing input', () => {
    for (const bad of [
      'field "uuid" != "x"',
      'field "uuid" = "a\\"b"',
      'field "uuid"',
      'true true',
      'field "uuid" = x',
    ])
      expect(failure(() => parseFilter(bad)).params[0]).toContain('Expression_error')
  })

  it('names the equalities a filter needs, so that an index can narrow it, and only where that cannot change the answer', () => {
    const VBD = SCHEMA.get('VBD')!
    const keys = (expr: string): unknown => compileQuery(VBD, expr).keys
    expect(keys('field "_ref" = "OpaqueRef:a" or "OpaqueRef:b" = field "_ref"')).toEqual([
      { field: '_ref', value: 'OpaqueRef:a' },
      { field: '_ref', value: 'OpaqueRef:b' },
    ])
    // the left of an and narrows: the right is evaluated only where the left holds
    expect(keys('field "VM" = "OpaqueRef:v" and field "nonsense" = "1"')).toEqual([
      { field: 'VM', value: 'OpaqueRef:v' },
    ])
    // the right alone would skip objects on which the host fails the call (an unknown column on the left)
    expect(keys('field "nonsense" = "1" and field "VM" = "OpaqueRef:v"')).toBeUndefined()
    // an or is narrowed only when both sides are
    expect(keys('field "VM" = "OpaqueRef:v" or field "empty" = "true"')).toEqual([
      { field: 'VM', value: 'OpaqueRef:v' },
      { field: 'empty', value: 'true' },
    ])
    expect(keys('field "VM" = "OpaqueRef:v" or true')).toBeUndefined()
    expect(keys('not field "_ref" = "OpaqueRef:a"')).toBeUndefined()
    expect(keys('field "VM" = field "VDI"')).toBeUndefined()
    // a computed set is compared as its marshalled list: no single ref to look up
    expect(compileQuery(VM, 'field "VBDs" = "OpaqueRef:b"').keys).toBeUndefined()
  })
})
