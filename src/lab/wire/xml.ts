/**
 * A small strict XML element parser for XML-RPC requests: elements, attributes (ignored), text,
 * the five predefined entities, numeric character references, CDATA, comments and the XML
 * declaration. Anything else is a {@link WireParseError}, which the server turns into XAPI's
 * HTTP 500 page.
 */

export interface XmlElement {
  readonly name: string
  readonly children: XmlElement[]
  /** concatenated character data directly inside this element */
  text: string
}

/** A request body the lab cannot parse (HTTP 500 with an HTML body, as XAPI does). */
export class WireParseError extends Error {
  override get name(): string {
    return 'WireParseError'
  }
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, body: string) => {
    if (body.startsWith('#x')) return String.fromCodePoint(parseInt(body.slice(2), 16))
    if (body.startsWith('#')) return String.fromCodePoint(parseInt(body.slice(1), 10))
    const entity = ENTITIES[body]
    if (entity === undefined) throw new WireParseError(`unknown entity ${whole}`)
    return entity
  })
}

export function parseXml(source: string): XmlElement {
  let pos = 0
  const stack: XmlElement[] = []
  let root: XmlElement | undefined

  const fail = (message: string): never => {
    throw new WireParseError(`${message} at character ${pos}`)
  }

  while (pos < source.length) {
    const lt = source.indexOf('<', pos)
    const textEnd = lt === -1 ? source.length : lt
    if (textEnd > pos) {
      const text = source.slice(pos, textEnd)
      const top = stack[stack.length - 1]
      if (top === undefined) {
        if (text.trim() !== '') fail('text outside the root element')
      } else {
        top.text += decodeEntities(text)
      }
      pos = textEnd
      continue
    }
    if (source.startsWith('<?', pos)) {
      const end = source.indexOf('?>', pos)
      if (end === -1) fail('unterminated processing instruction')
      pos = end + 2
    } else if (source.startsWith('<!--', pos)) {
      const end = source.indexOf('-->', pos)
      if (end === -1) fail('unterminated comment')
      pos = end + 3
    } else if (source.startsWith('<![CDATA[', pos)) {
      const end = source.indexOf(']]>', pos)
      const top = stack[stack.length - 1]
      if (end === -1 || top === undefined) fail('bad CDATA section')
      else top.text += source.slice(pos + 9, end)
      pos = end + 3
    } else if (source.startsWith('</', pos)) {
      const end = source.indexOf('>', pos)
      if (end === -1) fail('unterminated end tag')
      const name = source.slice(pos + 2, end).trim()
      const top = stack.pop()
      if (top === undefined || top.name !== name) fail(`unexpected </${name}>`)
      pos = end + 1
    } else {
      const end = source.indexOf('>', pos)
      if (end === -1) fail('unterminated tag')
      let body = source.slice(pos + 1, end)
      const selfClosing = body.endsWith('/')
      if (selfClosing) body = body.slice(0, -1)
      const match = /^([A-Za-z_][\w.:-]*)(\s[^]*)?$/.exec(body)
      if (match === null) fail('bad tag')
      const element: XmlElement = { name: match![1]!, children: [], text: '' }
      const parent = stack[stack.length - 1]
      if (parent === undefined) {
        if (root !== undefined) fail('second root element')
        root = element
      } else {
        parent.children.push(element)
      }
      if (!selfClosing) stack.push(element)
      pos = end + 1
    }
  }
  if (stack.length > 0 || root === undefined) fail('unexpected end of document')
  return root!
}

/** Escapes text content the way XAPI's marshaller does: `& < > "` escaped, control chars other than TAB/LF/CR dropped. */
export function escapeXml(text: string): string {
  let out = ''
  for (const ch of text) {
    const code = ch.codePointAt(0)!
    if (code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) continue
    switch (ch) {
      case '&':
        out += '&amp;'
        break
      case '<':
        out += '&lt;'
        break
      case '>':
        out += '&gt;'
        break
      case '"':
        out += '&quot;'
        break
      default:
        out += ch
    }
  }
  return out
}
