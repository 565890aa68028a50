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

  it('rejects what is not an XML-RPC value with a typed error', () => {
    expect(() => parseTaskResult('OpaqueRef:x')).toThrow(XenCrError)
    expect(() => parseTaskResult('<value><array><data></array></value>')).toThrow(/TASK_RESULT_INVALID|expected/)
  })
})
