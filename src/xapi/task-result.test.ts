import { describe, expect, it } from 'vitest'
import { XenCrError } from '../errors.js'
import { parseTaskResult } from './task-result.js'

describe('parseTaskResult', () => {
  it('reads a ref as XAPI stores it, and "" / <value></value> as empty', () => {
    expect(parseTaskResult('<value>OpaqueRef:1d2e</value>')).toBe('OpaqueRef:1d2e')
    expect(parseTaskResult('')).toBe('')
    expect(parseTaskResult('<value></value>')).toBe('')
    expect(parseTaskResult('<value/>')).toBe('')
  })

  it('reads arrays, structs, typed scalars and entities', () => {
    const xml =
      '<value><array><data><value>OpaqueRef:a</value><value><struct><member><name>n</name><value><i4>12</i4></value></member>' +
      '<member><name>b</name><value><boolean>1</boolean></value></member><member><name>s</name><value>a&amp;b&lt;c</value></member>' +
      '</struct></value><value><double>0.5</double></value></data></array></value>'
    expect(parseTaskResult(xml)).toEqual(['OpaqueRef:a', { n: 12, b: true, s: 'a&b<c' }, 0.5])
  })

  it('reads empty typed strings as "", i8 as a number and datetimes in XAPI form', () => {
    expect(parseTaskResult('<value><string/></value>')).toBe('')
    expect(parseTaskResult('<value><string></string></value>')).toBe('')
    expect(parseTaskResult('<value><i8>8589934592</i8></value>')).toBe(8_589_934_592)
    expect(parseTaskResult('<value><dateTime.iso8601>20241103T10:20:30Z</dateTime.iso8601></value>')).toBe(
      '20241103T10:20:30Z',
    )
    expect(parseTaskResult('<value><nil/></value>')).toBeNull()
  })

  it('rejects what is not an XML-RPC value with a typed error', () => {
    expect(() => parseTaskResult('OpaqueRef:x')).toThrow(XenCrError)
    expect(() => parseTaskResult('<value><array><data></array></value>')).toThrow(/TASK_RESULT_INVALID|expected/)
    expect(() => parseTaskResult('<value>a</value><value>b</value>')).toThrow(XenCrError)
    expect(() => parseTaskResult('<value><bigint>1</bigint></value>')).toThrow(/unsupported type <bigint>/)
    expect(() => parseTaskResult('<array><data></data></array>')).toThrow(/expected one <value>/)
  })
})
