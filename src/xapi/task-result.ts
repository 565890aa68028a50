/**
 * XAPI stores a task's result as the XML-RPC encoding of the return value, even for JSON-RPC
 * callers (reference §4.1): `<value>OpaqueRef:…</value>`, `<value></value>` for void, arrays as
 * `<value><array><data>…`. Export tasks finish with `""`. The fragment is parsed as `xen-api`
 * parses it (`_getTaskResult.mjs`): `@vates/xml` for the XML, `@vates/xml-rpc` for the values.
 */
import { parseXml, type XmlNode } from '@vates/xml/parse'
import { XmlRpcParser } from '@vates/xml-rpc/parser'
import { OperationError } from '../errors.js'
import { normaliseValue } from './normalise-record.js'

/** Where our results differ from `@vates/xml-rpc`'s, each to keep what callers already get. */
class TaskResultParser extends XmlRpcParser {
  /** A tag the library has no method for is a bad result, not a TypeError from deep inside it. */
  override parse(node: XmlNode): unknown {
    const method = (this as unknown as Record<string, unknown>)[`parse_${node.name}`]
    if (typeof method !== 'function') throw new Error(`unsupported type <${node.name}>`)
    return super.parse(node)
  }

  /** `<string/>` and `<string></string>` have no text child; the library would return undefined. */
  override parse_string(node: XmlNode): string {
    return super.parse_string(node) ?? ''
  }

  /** XAPI's 64-bit ints; the library knows only `int` and `i4`. */
  parse_i8(node: XmlNode): number {
    return this.parse_int(node)
  }
}

const parser = new TaskResultParser()

/**
 * The value of a successful task's `result` field: `""` stays `""`, otherwise the XML-RPC value
 * (`<value>OpaqueRef:…</value>` → `'OpaqueRef:…'`). Ints come back as numbers when typed, bare
 * values as strings — as XAPI encodes them.
 * @throws OperationError `TASK_RESULT_INVALID` when the result is not one XML-RPC `<value>`
 */
export function parseTaskResult(result: string): unknown {
  if (result.trim() === '') return ''
  try {
    // The trailing newline and untrimmed text are xen-api's own settings: string values keep
    // their spaces, and sax sees the end of the root element before the input ends.
    const root = parseXml(`${result}\n`, { normalize: false, trim: false })
    if (typeof root !== 'object' || root.name !== 'value') throw new Error('expected one <value> element')
    // Datetimes become XAPI strings, as every other XML-RPC value the client hands out.
    return normaliseValue(parser.parse_value(root))
  } catch (error) {
    const reason = error instanceof Error ? (error.message.split('\n')[0] ?? error.message) : String(error)
    throw new OperationError('TASK_RESULT_INVALID', `task result is not an XML-RPC value: ${reason}`, {
      cause: error,
    })
  }
}
