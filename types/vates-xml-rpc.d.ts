/**
 * Ambient declarations for the part of Vates' untyped `@vates/xml-rpc` (1.x) that `src/xapi/`
 * uses: the parser from `@vates/xml` trees to JavaScript values (the one `xen-api` uses for task
 * results). It has one `parse_<tag>` method per XML-RPC tag, which a subclass may override.
 */
declare module '@vates/xml-rpc/parser' {
  import type { XmlNode } from '@vates/xml/parse'

  export class XmlRpcParser {
    /** dispatches to `parse_<node.name>`; a TypeError for a tag it has no method for */
    parse(node: XmlNode): unknown
    parse_value(node: XmlNode): unknown
    parse_array(node: XmlNode): unknown[]
    parse_struct(node: XmlNode): Record<string, unknown>
    parse_string(node: XmlNode): string | undefined
    parse_int(node: XmlNode): number
    parse_i4(node: XmlNode): number
    parse_double(node: XmlNode): number
    parse_boolean(node: XmlNode): boolean
    parse_nil(): null
    parse_base64(node: XmlNode): Buffer
    'parse_dateTime.iso8601'(node: XmlNode): Date
  }

  export const xmlRpcParser: XmlRpcParser
}
