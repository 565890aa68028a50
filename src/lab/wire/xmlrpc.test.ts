/**
 * Golden XML-RPC bytes (reference §1.2, §8.1): the JS client's XML parser does not trim, so any
 * whitespace, a `<string>` or `<int>` tag where XAPI sends bare text, or a `<fault>` instead of
 * the Status struct would break real clients; these tests pin the exact strings.
 */
import { describe, expect, it } from 'vitest'
import { WireDateTime, WireFloat, WireInt32, formatXapiDate } from './values.js'
import { WireParseError } from './xml.js'
import { decodeXmlCall, encodeXmlBare, encodeXmlFailure, encodeXmlSuccess, encodeXmlValue } from './xmlrpc.js'

const HEAD = '<?xml version="1.0"?><methodResponse><params><param>'
const TAIL = '</param></params></methodResponse>'

describe('XML-RPC responses', () => {
  it('wraps a success in Status then Value with no whitespace', () => {
    expect(encodeXmlSuccess('OpaqueRef:1b6b1a7d-1f2e-4c1f-9a4d-2f0a8b7c6d5e')).toBe(
      `${HEAD}<value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name><value>OpaqueRef:1b6b1a7d-1f2e-4c1f-9a4d-2f0a8b7c6d5e</value></member></struct></value>${TAIL}`,
    )
  })

  it('sends failures as an ErrorDescription array of strings, never a <fault>', () => {
    expect(encodeXmlFailure('SESSION_INVALID', ['OpaqueRef:x'])).toBe(
      `${HEAD}<value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data><value>SESSION_INVALID</value><value>OpaqueRef:x</value></data></array></value></member></struct></value>${TAIL}`,
    )
  })

  it('answers system.listMethods with the bare array', () => {
    expect(encodeXmlBare(['VM.get_all_records', 'VM.snapshot'])).toBe(
      `${HEAD}<value><array><data><value>VM.get_all_records</value><value>VM.snapshot</value></data></array></value>${TAIL}`,
    )
  })

  it('encodes each type as XAPI does', () => {
    expect(encodeXmlValue(1234)).toBe('<value>1234</value>')
    expect(encodeXmlValue(-1)).toBe('<value>-1</value>')
    expect(encodeXmlValue(2 * 1024 ** 4)).toBe('<value>2199023255552</value>')
    expect(encodeXmlValue(true)).toBe('<value><boolean>1</boolean></value>')
    expect(encodeXmlValue(false)).toBe('<value><boolean>0</boolean></value>')
    expect(encodeXmlValue(new WireFloat(0.5))).toBe('<value><double>0.5</double></value>')
    expect(encodeXmlValue(new WireFloat(1))).toBe('<value><double>1</double></value>')
    expect(encodeXmlValue(new WireFloat(60.1))).toBe('<value><double>60.1</double></value>')
    expect(encodeXmlValue(new WireFloat(0.1 + 0.2))).toBe('<value><double>0.3</double></value>')
    expect(encodeXmlValue(new WireInt32(12))).toBe('<value><i4>12</i4></value>')
    expect(encodeXmlValue(new WireDateTime('20241103T10:20:30Z'))).toBe(
      '<value><dateTime.iso8601>20241103T10:20:30Z</dateTime.iso8601></value>',
    )
    expect(encodeXmlValue('')).toBe('<value></value>')
    expect(encodeXmlValue('a&b<c>d"e\'f')).toBe("<value>a&amp;b&lt;c&gt;d&quot;e'f</value>")
    expect(encodeXmlValue('tab\there\nnl\u0001bell\u0007')).toBe('<value>tab\there\nnlbell</value>')
    expect(encodeXmlValue([])).toBe('<value><array><data></data></array></value>')
    expect(encodeXmlValue({})).toBe('<value><struct></struct></value>')
    expect(encodeXmlValue({ 'xo:backup:job': 'j', n: 1 })).toBe(
      '<value><struct><member><name>xo:backup:job</name><value>j</value></member><member><name>n</name><value>1</value></member></struct></value>',
    )
  })

  it('formats dates as YYYYMMDDTHH:MM:SSZ', () => {
    expect(formatXapiDate(new Date('2024-11-03T10:20:30.789Z'))).toBe('20241103T10:20:30Z')
    expect(formatXapiDate(new Date(0))).toBe('19700101T00:00:00Z')
  })
})

describe('XML-RPC requests', () => {
  it('decodes what the JS client sends: ints as strings, floats as <double>, bools, dates, nil, structs', () => {
    const body =
      '<?xml version="1.0"?><methodCall><methodName>event.from</methodName><params>' +
      '<param><value><string>OpaqueRef:s</string></value></param>' +
      '<param><value><array><data><value><string>VM</string></value><value>task</value></data></array></value></param>' +
      '<param><value><string></string></value></param>' +
      '<param><value><double>60.1</double></value></param>' +
      '<param><value><struct><member><name>k</name><value><i4>7</i4></value></member><member><name>b</name><value><boolean>1</boolean></value></member><member><name>f</name><value><boolean>0</boolean></value></member></struct></value></param>' +
      '<param><value><dateTime.iso8601>2024-11-03T10:20:30.000Z</dateTime.iso8601></value></param>' +
      '<param><value><nil/></value></param>' +
      '<param><value/></param>' +
      '<param><value><i8>-5</i8></value></param>' +
      '<param><value><base64>aGk=</base64></value></param>' +
      '</params></methodCall>'
    const call = decodeXmlCall(body)
    expect(call.method).toBe('event.from')
    expect(call.params.slice(0, 5)).toEqual(['OpaqueRef:s', ['VM', 'task'], '', 60.1, { k: 7, b: true, f: false }])
    expect((call.params[5] as Date).toISOString()).toBe('2024-11-03T10:20:30.000Z')
    expect(call.params.slice(6, 9)).toEqual([null, '', -5])
    expect((call.params[9] as Buffer).toString()).toBe('hi')
  })

  it('tolerates whitespace between tags, entities and XAPI-form dates', () => {
    const call = decodeXmlCall(
      '<?xml version="1.0"?>\n<methodCall>\n  <methodName>VM.set_name_label</methodName>\n  <params>\n    <param><value>a &amp; b &#x41;</value></param>\n    <param><value><dateTime.iso8601>20241103T10:20:30Z</dateTime.iso8601></value></param>\n  </params>\n</methodCall>\n',
    )
    expect(call.params[0]).toBe('a & b A')
    expect((call.params[1] as Date).toISOString()).toBe('2024-11-03T10:20:30.000Z')
  })

  it('accepts an empty <params/>', () => {
    expect(decodeXmlCall('<methodCall><methodName>system.listMethods</methodName><params/></methodCall>')).toEqual({
      method: 'system.listMethods',
      params: [],
    })
  })

  it('rejects what XAPI cannot parse', () => {
    for (const body of [
      '<methodCall><methodName>x</methodName></methodCall>',
      '<methodCall><params/></methodCall>',
      '<methodCall><methodName>x</methodName><params><param><value><int>1.5</int></value></param></params></methodCall>',
      '<methodCall><methodName>x</methodName><params>',
      'not xml at all',
      '{"id":0}',
      '<methodCall><methodName>x</methodName><params><param><value><bogus/></value></param></params></methodCall>',
    ]) {
      expect(() => decodeXmlCall(body), body).toThrow(WireParseError)
    }
  })
})
