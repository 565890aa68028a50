/**
 * XML-RPC as XAPI speaks it (reference §1.2): responses without any whitespace, a
 * `Status`/`Value`/`ErrorDescription` struct instead of `<fault>`, bare strings for strings and
 * ints, `<i4>` only for `valid_ref_counts`.
 */
import { escapeXml, parseXml, WireParseError, type XmlElement } from './xml.js'
import { formatDouble, WireDateTime, WireFloat, WireInt32, type DecodedValue, type WireValue } from './values.js'

export function encodeXmlValue(value: WireValue): string {
  if (typeof value === 'string') return `<value>${escapeXml(value)}</value>`
  if (typeof value === 'number')
    return `<value>${Number.isInteger(value) ? value.toFixed(0) : formatDouble(value)}</value>`
  if (typeof value === 'boolean') return `<value><boolean>${value ? '1' : '0'}</boolean></value>`
  if (value instanceof WireFloat) return `<value><double>${formatDouble(value.value)}</double></value>`
  if (value instanceof WireInt32) return `<value><i4>${value.value.toFixed(0)}</i4></value>`
  if (value instanceof WireDateTime) return `<value><dateTime.iso8601>${value.value}</dateTime.iso8601></value>`
  if (Array.isArray(value)) {
    return `<value><array><data>${(value as readonly WireValue[]).map(encodeXmlValue).join('')}</data></array></value>`
  }
  let members = ''
  for (const [name, member] of Object.entries(value as { readonly [key: string]: WireValue })) {
    // XAPI writes member names raw, unescaped.
    members += `<member><name>${name}</name>${encodeXmlValue(member)}</member>`
  }
  return `<value><struct>${members}</struct></value>`
}

function wrapResponse(value: string): string {
  return `<?xml version="1.0"?><methodResponse><params><param>${value}</param></params></methodResponse>`
}

export function encodeXmlSuccess(value: WireValue): string {
  return wrapResponse(encodeXmlValue({ Status: 'Success', Value: value }))
}

export function encodeXmlFailure(code: string, params: readonly string[]): string {
  return wrapResponse(encodeXmlValue({ Status: 'Failure', ErrorDescription: [code, ...params] }))
}

/** `system.listMethods` answers with the bare value, no Status/Value struct. */
export function encodeXmlBare(value: WireValue): string {
  return wrapResponse(encodeXmlValue(value))
}

function only(element: XmlElement, what: string): XmlElement {
  const child = element.children[0]
  if (element.children.length !== 1 || child === undefined)
    throw new WireParseError(`<${element.name}> must hold exactly one ${what}`)
  return child
}

function decodeValue(element: XmlElement): DecodedValue {
  if (element.name !== 'value') throw new WireParseError(`expected <value>, got <${element.name}>`)
  if (element.children.length === 0) return element.text
  const typed = only(element, 'typed value')
  const text = typed.text
  switch (typed.name) {
    case 'string':
      return text
    case 'int':
    case 'i4':
    case 'i8': {
      if (!/^[+-]?\d+$/.test(text.trim())) throw new WireParseError(`bad <${typed.name}> ${text}`)
      return Number(text.trim())
    }
    case 'boolean':
      return text.trim() === '1'
    case 'double': {
      const n = Number(text.trim())
      if (text.trim() === '' || Number.isNaN(n)) throw new WireParseError(`bad <double> ${text}`)
      return n
    }
    case 'dateTime.iso8601':
      return parseXmlRpcDate(text.trim())
    case 'base64':
      return Buffer.from(text.replace(/\s+/g, ''), 'base64')
    case 'nil':
      return null
    case 'array': {
      const data = only(typed, '<data>')
      if (data.name !== 'data') throw new WireParseError('<array> without <data>')
      return data.children.map(decodeValue)
    }
    case 'struct': {
      const out: { [key: string]: DecodedValue } = {}
      for (const member of typed.children) {
        const name = member.children.find(c => c.name === 'name')
        const value = member.children.find(c => c.name === 'value')
        if (member.name !== 'member' || name === undefined || value === undefined)
          throw new WireParseError('bad <member>')
        out[name.text] = decodeValue(value)
      }
      return out
    }
    default:
      throw new WireParseError(`unknown value type <${typed.name}>`)
  }
}

/** Accepts XAPI's basic form and ISO 8601 with dashes (the JS client sends `toISOString()` output). */
function parseXmlRpcDate(text: string): Date {
  const basic = /^(\d{4})(\d{2})(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/.exec(text)
  const iso =
    basic === null ? text : `${basic[1]}-${basic[2]}-${basic[3]}T${basic[4]}:${basic[5]}:${basic[6]}${basic[7] ?? 'Z'}`
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) throw new WireParseError(`bad dateTime.iso8601 ${text}`)
  return date
}

/**
 * A standalone XML-RPC value document (`<value>…</value>`, optionally after an XML
 * declaration), such as an XVA's `ova.xml`.
 */
export function decodeXmlValueDocument(text: string): DecodedValue {
  return decodeValue(parseXml(text))
}

export interface DecodedCall {
  readonly method: string
  readonly params: DecodedValue[]
}

export function decodeXmlCall(body: string): DecodedCall {
  const root = parseXml(body)
  if (root.name !== 'methodCall') throw new WireParseError(`expected <methodCall>, got <${root.name}>`)
  const methodName = root.children.find(c => c.name === 'methodName')
  const params = root.children.find(c => c.name === 'params')
  if (methodName === undefined) throw new WireParseError('<methodCall> without <methodName>')
  if (params === undefined) throw new WireParseError('<methodCall> without <params>')
  return {
    method: methodName.text.trim(),
    params: params.children.map(param => {
      if (param.name !== 'param') throw new WireParseError(`expected <param>, got <${param.name}>`)
      return decodeValue(only(param, '<value>'))
    }),
  }
}
