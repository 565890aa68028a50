/**
 * The tar framing of an XVA: 512-byte ustar headers, bodies padded to 512 bytes, two zero
 * blocks at the end. The writer makes headers as XAPI's ocaml-tar `Header.make` does (mode
 * 0400, uid/gid 0, mtime 0); the reader is a forward-only state machine over a byte stream that
 * holds at most one member body at a time.
 */
import { ByteReader } from '../../vhd/byte-reader.js'
import { XvaFormatError, errorCode } from '../lab-error.js'

/** Size of a tar header and the unit bodies are padded to. */
export const TAR_BLOCK = 512

/** The end-of-archive marker: two zero blocks. */
export const TAR_END: Buffer = Buffer.alloc(2 * TAR_BLOCK)

function writeOctal(header: Buffer, offset: number, width: number, value: number): void {
  // width-1 octal digits and a NUL, as POSIX ustar asks
  header.write(value.toString(8).padStart(width - 1, '0'), offset, width - 1, 'ascii')
  header[offset + width - 1] = 0
}

/** The 512-byte ustar header of a regular file `name` of `size` bytes. */
export function tarHeader(name: string, size: number, options: { mtime?: number; mode?: number } = {}): Buffer {
  const nameBytes = Buffer.from(name, 'utf8')
  if (nameBytes.length > 100) throw new RangeError(`tar member name ${name} is longer than 100 bytes`)
  if (!Number.isSafeInteger(size) || size < 0 || size >= 8 ** 11)
    throw new RangeError(`tar member ${name}: size ${size} does not fit a ustar header`)
  const header = Buffer.alloc(TAR_BLOCK)
  nameBytes.copy(header, 0)
  writeOctal(header, 100, 8, options.mode ?? 0o400)
  writeOctal(header, 108, 8, 0)
  writeOctal(header, 116, 8, 0)
  writeOctal(header, 124, 12, size)
  writeOctal(header, 136, 12, options.mtime ?? 0)
  header.fill(0x20, 148, 156)
  header[156] = 0x30 // '0': regular file
  header.write('ustar\u000000', 257, 8, 'ascii')
  let sum = 0
  for (const byte of header) sum += byte
  header.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii')
  return header
}

/** The zeros that pad a body of `size` bytes to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK)
}

/** One member as its header describes it. */
export interface TarEntry {
  readonly name: string
  readonly size: number
  /** `'0'` for a regular file (`\0` is read as `'0'`) */
  readonly type: string
  /** absolute offset of the header in the stream */
  readonly offset: number
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0)
  return bytes.subarray(0, end === -1 ? bytes.length : end).toString('utf8')
}

function parseNumber(field: Buffer, what: string, offset: number): number {
  // GNU base-256 for values that do not fit in octal digits
  if ((field[0]! & 0x80) !== 0) {
    let value = field[0]! & 0x7f
    for (const byte of field.subarray(1)) value = value * 256 + byte
    return value
  }
  const text = cString(field).trim()
  if (text === '') return 0
  if (!/^[0-7]+$/.test(text))
    throw new XvaFormatError('XVA_BAD_HEADER', `tar header ${what} is not octal: ${JSON.stringify(text)}`, offset)
  return parseInt(text, 8)
}

/**
 * Reads tar members in order: {@link next} gives the next header, {@link body} (or
 * {@link skip}) consumes its body and padding. A truncated stream is `XVA_TRUNCATED`, a damaged
 * header `XVA_BAD_HEADER`.
 */
export class TarReader {
  readonly #input: ByteReader
  #current: TarEntry | undefined
  #consumed = true

  constructor(source: AsyncIterable<Buffer>, signal?: AbortSignal) {
    this.#input = new ByteReader(source[Symbol.asyncIterator](), signal)
  }

  /** Bytes consumed so far. */
  get position(): number {
    return this.#input.position
  }

  /** The next member's header, or undefined at the end-of-archive marker. */
  async next(): Promise<TarEntry | undefined> {
    if (!this.#consumed) await this.skip()
    const offset = this.#input.position
    const header = await this.#read(TAR_BLOCK, 'tar header')
    if (header.every(byte => byte === 0)) {
      this.#current = undefined
      return undefined
    }
    const stored = parseNumber(header.subarray(148, 156), 'checksum', offset)
    let unsigned = 0
    let signed = 0
    for (let i = 0; i < TAR_BLOCK; i++) {
      const byte = i >= 148 && i < 156 ? 0x20 : header[i]!
      unsigned += byte
      signed += byte > 127 ? byte - 256 : byte
    }
    // old tars summed signed bytes; both are valid
    if (stored !== unsigned && stored !== signed)
      throw new XvaFormatError(
        'XVA_BAD_HEADER',
        `tar header checksum ${stored} does not match its content (${unsigned})`,
        offset,
      )
    let name = cString(header.subarray(0, 100))
    const magic = header.subarray(257, 262).toString('ascii')
    const prefix = magic === 'ustar' ? cString(header.subarray(345, 500)) : ''
    if (prefix !== '') name = `${prefix}/${name}`
    const typeByte = header[156]!
    const type = typeByte === 0 ? '0' : String.fromCharCode(typeByte)
    const entry: TarEntry = { name, size: parseNumber(header.subarray(124, 136), 'size', offset), type, offset }
    this.#current = entry
    this.#consumed = false
    return entry
  }

  /** The whole body of the current member (at most `limit` bytes) and its padding. */
  async body(limit: number): Promise<Buffer> {
    const entry = this.#entry()
    if (entry.size > limit)
      throw new XvaFormatError(
        'XVA_MEMBER_TOO_LARGE',
        `tar member ${entry.name} is ${entry.size} bytes, more than the ${limit} expected`,
        entry.offset,
      )
    const data = await this.#read(entry.size, `body of ${entry.name}`)
    await this.#read(tarPadding(entry.size).length, `padding of ${entry.name}`)
    this.#consumed = true
    return data
  }

  /** Discards the body of the current member and its padding. */
  async skip(): Promise<void> {
    const entry = this.#entry()
    const end = entry.offset + TAR_BLOCK + entry.size + tarPadding(entry.size).length
    try {
      await this.#input.skipTo(end, `body of ${entry.name}`)
    } catch (error) {
      throw this.#translate(error, `body of ${entry.name}`)
    }
    this.#consumed = true
  }

  /** Reads and discards what is left of the stream, at most `limit` bytes; resolves at its end. */
  async drain(limit: number): Promise<void> {
    let left = limit
    while (left > 0) {
      const piece = await this.#input.readUpTo(Math.min(left, 64 * 1024))
      if (piece.length === 0) return
      left -= piece.length
    }
  }

  #entry(): TarEntry {
    if (this.#current === undefined || this.#consumed) throw new Error('TarReader: no member is open')
    return this.#current
  }

  async #read(length: number, what: string): Promise<Buffer> {
    try {
      return await this.#input.read(length, what)
    } catch (error) {
      throw this.#translate(error, what)
    }
  }

  #translate(error: unknown, what: string): unknown {
    // ByteReader speaks VHD; a stream that ends inside the tar is our truncation
    if (errorCode(error) === 'VHD_TRUNCATED')
      return new XvaFormatError('XVA_TRUNCATED', `XVA ended inside the ${what}`, this.#input.position, { cause: error })
    return error
  }
}
