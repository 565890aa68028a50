/**
 * XAPI stores a task's result as the XML-RPC encoding of the return value, even for JSON-RPC
 * callers (reference §4.1): `<value>OpaqueRef:…</value>`, `<value></value>` for void, arrays as
 * `<value><array><data>…`. Export tasks finish with `""`. This parses that fragment.
 */
import { OperationError } from '../errors.js'

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }

function decodeText(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, name: string) => {
    if (name.startsWith('#x')) return String.fromCodePoint(Number.parseInt(name.slice(2), 16))
    if (name.startsWith('#')) return String.fromCodePoint(Number.parseInt(name.slice(1), 10))
    return ENTITIES[name] ?? whole
  })
}

class Cursor {
  position = 0
  constructor(readonly text: string) {}

  fail(what: string): never {
    throw new OperationError(
      'TASK_RESULT_INVALID',
      `task result is not an XML-RPC value: ${what} at character ${this.position}`,
    )
  }

  skipSpace(): void {
    while (this.position < this.text.length && /\s/.test(this.text[this.position] ?? '')) this.position++
  }

  /** Reads `<name>` or `<name/>`; returns the name and whether it was self-closing. */
  openTag(): { name: string; empty: boolean } {
    this.skipSpace()
    const match = /^<([A-Za-z0-9_.]+)\s*(\/?)>/.exec(this.text.slice(this.position))
    if (match === null) this.fail('expected an opening tag')
    this.position += match[0].length
    return { name: match[1] ?? '', empty: match[2] === '/' }
  }

  closeTag(name: string): void {
    this.skipSpace()
    const tag = `</${name}>`
    if (!this.text.startsWith(tag, this.position)) this.fail(`expected ${tag}`)
    this.position += tag.length
  }

  peekClose(): boolean {
    this.skipSpace()
    return this.text.startsWith('</', this.position)
  }

  textUntilTag(): string {
    const end = this.text.indexOf('<', this.position)
    if (end === -1) this.fail('unterminated text')
    const text = this.text.slice(this.position, end)
    this.position = end
    return decodeText(text)
  }
}

function parseValue(cursor: Cursor): unknown {
  const open = cursor.openTag()
  if (open.name !== 'value') cursor.fail(`expected <value>, got <${open.name}>`)
  if (open.empty) return ''
  // An untyped value is a string: its text runs up to `</value>`.
  const text = cursor.textUntilTag()
  if (cursor.text.startsWith('</value>', cursor.position)) {
    cursor.position += '</value>'.length
    return text
  }
  const typed = parseTyped(cursor)
  cursor.closeTag('value')
  return typed
}

function parseTyped(cursor: Cursor): unknown {
  const { name, empty } = cursor.openTag()
  if (empty) {
    if (name === 'nil') return null
    if (name === 'string') return ''
    cursor.fail(`empty <${name}/>`)
  }
  switch (name) {
    case 'string':
    case 'dateTime.iso8601': {
      const text = cursor.textUntilTag()
      cursor.closeTag(name)
      return text
    }
    case 'int':
    case 'i4':
    case 'i8':
    case 'double': {
      const text = cursor.textUntilTag()
      cursor.closeTag(name)
      return Number(text)
    }
    case 'boolean': {
      const text = cursor.textUntilTag()
      cursor.closeTag(name)
      return text.trim() === '1'
    }
    case 'array': {
      const values: unknown[] = []
      const data = cursor.openTag()
      if (data.name !== 'data') cursor.fail('expected <data>')
      if (!data.empty) {
        while (!cursor.peekClose()) values.push(parseValue(cursor))
        cursor.closeTag('data')
      }
      cursor.closeTag('array')
      return values
    }
    case 'struct': {
      const struct: Record<string, unknown> = {}
      while (!cursor.peekClose()) {
        if (cursor.openTag().name !== 'member') cursor.fail('expected <member>')
        if (cursor.openTag().name !== 'name') cursor.fail('expected <name>')
        const key = cursor.textUntilTag()
        cursor.closeTag('name')
        struct[key] = parseValue(cursor)
        cursor.closeTag('member')
      }
      cursor.closeTag('struct')
      return struct
    }
    default:
      return cursor.fail(`unsupported type <${name}>`)
  }
}

/**
 * The value of a successful task's `result` field: `""` stays `""`, otherwise the XML-RPC value
 * (`<value>OpaqueRef:…</value>` → `'OpaqueRef:…'`). Ints come back as numbers when typed, bare
 * values as strings — as XAPI encodes them.
 */
export function parseTaskResult(result: string): unknown {
  if (result.trim() === '') return ''
  const cursor = new Cursor(result)
  const value = parseValue(cursor)
  cursor.skipSpace()
  if (cursor.position !== result.length) cursor.fail('trailing content')
  return value
}
