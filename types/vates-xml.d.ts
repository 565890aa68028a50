/**
 * Ambient declarations for the part of Vates' untyped `@vates/xml` (2.x) that `src/xapi/` uses:
 * sax-based parsing into a tree of `{ name, attributes, children }` nodes and text strings.
 */
declare module '@vates/xml/parse' {
  export interface XmlNode {
    readonly name: string
    readonly attributes: Readonly<Record<string, string>>
    readonly children: ReadonlyArray<XmlNode | string>
  }

  /** The document's root element; throws on malformed XML (strict mode by default). */
  export function parseXml(
    xml: string,
    options?: { normalize?: boolean; strict?: boolean; trim?: boolean },
  ): XmlNode | string | undefined
}
