import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream'
import { AbortedError, VhdError, isXenCrError } from '../errors.js'
import { decodeFooter } from './footer.js'
import type { VhdFooter } from './footer.js'
import { EMPTY_LOCATOR, decodeHeader } from './header.js'
import type { VhdHeader } from './header.js'
import { FOOTER_SIZE, HEADER_SIZE, SECTOR_SIZE, bitmapSize, canonicalLayout } from './layout.js'
import { blockOrder, checkCookie, checkHeader, checkLeadingFooter, decodeBat } from './reader.js'
import { encodePrologue } from './writer.js'

/**
 * Bytes each side of the normaliser holds before it pushes back: a few socket reads (64 KiB
 * each), so that neither side waits on the other for every chunk, and far below a block.
 */
const HIGH_WATER_MARK = 256 * 1024

/** What {@link normaliseVhd} resolves with. */
export interface NormalisedVhd {
  /** exact byte length of `stream` */
  readonly length: number
  readonly footer: VhdFooter
  readonly header: VhdHeader
  readonly stream: Readable
}

/**
 * Re-emits a dynamic or differencing VHD in the canonical layout (reference §5.2) with the same
 * blocks and sector bitmaps, so that its exact length is known from footer, header and BAT
 * before any block is read: an import then always has a true Content-Length (XAPI refuses
 * chunked uploads, and the 1 PiB trick ends in a failed task). Blocks keep their source file
 * order. Parent locators are dropped (importers ignore them); parent id, name and time stamp
 * stay. Returns the footer and header as re-emitted. Malformed input rejects with a
 * {@link VhdError} before any byte is emitted if it is in footer, header or BAT, and otherwise
 * errors the stream.
 *
 * A bare pipe past the BAT: one Transform parses footer, header and BAT, then forwards each
 * block's bitmap and data as the slices of the source's chunks they arrived in (no copy, no
 * per-block buffer), skipping gaps; it holds at most the BAT and one chunk, with backpressure
 * both ways. A consumer that stops early (destroys the stream) destroys the source; a failing
 * source is `VHD_SOURCE_ERROR` with the byte offset, an abort `AbortedError`.
 */
export async function normaliseVhd(source: Readable, options: { signal?: AbortSignal } = {}): Promise<NormalisedVhd> {
  const normaliser = new VhdNormaliser(options.signal)
  // both ways: a source error destroys the normaliser (wrapped with the offset), a destroyed
  // normaliser destroys the source
  pipeline(source, normaliser, () => undefined)
  // Once the source has all been read, the pipeline lets go of the normaliser; an abort while no
  // consumer is attached yet (the import's task.create still pending) would then be an uncaught
  // 'error'. The stream stays errored for whoever reads or pipes it later.
  normaliser.on('error', () => undefined)
  try {
    const { length, footer, header } = await normaliser.ready
    return { length, footer, header, stream: normaliser }
  } catch (error) {
    normaliser.destroy()
    source.destroy()
    throw error
  }
}

type Phase = 'footer' | 'header' | 'bat' | 'blocks' | 'tail'

interface Prepared {
  readonly length: number
  readonly footer: VhdFooter
  readonly header: VhdHeader
}

class VhdNormaliser extends Transform {
  /** resolves once the prologue is out (footer, header and BAT parsed), rejects on any failure before */
  readonly ready: Promise<Prepared>
  #resolve!: (prepared: Prepared) => void
  #reject!: (error: Error) => void
  #settled = false
  readonly #signal: AbortSignal | undefined
  readonly #onAbort = (): void => {
    this.destroy(new AbortedError('VHD stream aborted', { cause: this.#signal?.reason }))
  }

  /** source bytes consumed */
  #position = 0
  #phase: Phase = 'footer'
  /** footer, header, BAT: they start at `#at` and are `#need` bytes; slices gathered so far */
  #at = 0
  #need = FOOTER_SIZE
  #parts: Buffer[] = []
  #held = 0

  #leading: Buffer | undefined
  #sourceFooter: VhdFooter | undefined
  #sourceHeader: VhdHeader | undefined
  #bat: Uint32Array | undefined
  #order: number[] = []
  /** index into `#order` of the block being forwarded */
  #next = 0
  #blockStart = 0
  #blockEnd = 0
  #bitmapBytes = 0
  #stride = 0

  #afterBlocks = 0
  readonly #tail = Buffer.alloc(FOOTER_SIZE)
  #tailHeld = 0

  #footerBytes: Buffer | undefined
  #length = 0
  #emitted = 0

  constructor(signal: AbortSignal | undefined) {
    super({ readableHighWaterMark: HIGH_WATER_MARK, writableHighWaterMark: HIGH_WATER_MARK })
    this.ready = new Promise<Prepared>((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    this.#signal = signal
    if (signal?.aborted === true) queueMicrotask(this.#onAbort)
    else signal?.addEventListener('abort', this.#onAbort, { once: true })
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#consume(toBuffer(chunk))
    } catch (error) {
      callback(error as Error)
      return
    }
    callback()
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.#finish()
    } catch (error) {
      callback(error as Error)
      return
    }
    callback()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#signal?.removeEventListener('abort', this.#onAbort)
    const reported = error === null ? null : this.#wrap(error)
    this.#fail(reported ?? new VhdError('VHD_TRUNCATED', 'VHD stream closed before its BAT', this.#position))
    callback(reported)
  }

  /** Ours and every xen-cr error as is; a failing source (reset socket…) typed, with where it happened. */
  #wrap(error: Error): Error {
    if (isXenCrError(error)) return error
    if (this.#signal?.aborted === true) return new AbortedError('VHD stream aborted', { cause: this.#signal.reason })
    return new VhdError('VHD_SOURCE_ERROR', `VHD source failed: ${error.message}`, this.#position, { cause: error })
  }

  #fail(error: Error): void {
    if (this.#settled) return
    this.#settled = true
    this.#reject(error)
  }

  #consume(chunk: Buffer): void {
    let i = 0
    while (i < chunk.length) {
      const left = chunk.length - i
      if (this.#phase === 'blocks') {
        if (this.#position < this.#blockStart) {
          const skip = Math.min(left, this.#blockStart - this.#position)
          i += skip
          this.#position += skip
          continue
        }
        const take = Math.min(left, this.#blockEnd - this.#position)
        this.#emit(i === 0 && take === chunk.length ? chunk : chunk.subarray(i, i + take))
        i += take
        this.#position += take
        if (this.#position === this.#blockEnd) this.#nextBlock()
      } else if (this.#phase === 'tail') {
        this.#keepTail(chunk.subarray(i))
        this.#position += left
        i = chunk.length
      } else {
        if (this.#position < this.#at) {
          const skip = Math.min(left, this.#at - this.#position)
          i += skip
          this.#position += skip
          continue
        }
        const take = Math.min(left, this.#need - this.#held)
        this.#parts.push(chunk.subarray(i, i + take))
        this.#held += take
        i += take
        this.#position += take
        if (this.#phase === 'footer' && this.#parts.length === 1) checkCookie(this.#parts[0] as Buffer)
        if (this.#held === this.#need) {
          const bytes = this.#parts.length === 1 ? (this.#parts[0] as Buffer) : Buffer.concat(this.#parts, this.#held)
          this.#parts = []
          this.#held = 0
          this.#parsed(bytes)
        }
      }
    }
  }

  /** Footer, header or BAT complete. */
  #parsed(bytes: Buffer): void {
    if (this.#phase === 'footer') {
      this.#leading = Buffer.from(bytes) // a copy: 512 bytes, compared with the trailing footer
      const footer = checkLeadingFooter(this.#leading)
      this.#sourceFooter = footer
      this.#expect('header', footer.dataOffset, HEADER_SIZE)
    } else if (this.#phase === 'header') {
      const footer = this.#sourceFooter as VhdFooter
      const headerOffset = this.#at
      const header = decodeHeader(bytes, headerOffset)
      checkHeader(header, footer, headerOffset)
      if (header.tableOffset < this.#position) {
        throw new VhdError(
          'VHD_BAD_HEADER',
          `VHD table offset ${header.tableOffset} points back into the header; streams are read forward only`,
          headerOffset + 16,
        )
      }
      this.#sourceHeader = header
      this.#expect('bat', header.tableOffset, header.maxTableEntries * 4)
    } else {
      this.#prepare(decodeBat(bytes, (this.#sourceHeader as VhdHeader).maxTableEntries))
    }
  }

  #expect(phase: Phase, at: number, need: number): void {
    this.#phase = phase
    this.#at = at
    this.#need = need
  }

  /** BAT read: the canonical layout, its prologue out, the length known. */
  #prepare(bat: Uint32Array): void {
    const sourceFooter = this.#sourceFooter as VhdFooter
    const sourceHeader = this.#sourceHeader as VhdHeader
    // in file order: the reader meets the blocks in that order, and the new BAT places them so
    const order = blockOrder(bat, sourceHeader, sourceFooter)
    const layout = canonicalLayout(sourceHeader.maxTableEntries, sourceHeader.blockSize, order.length)
    const footer: VhdFooter = { ...sourceFooter, dataOffset: layout.headerOffset }
    const header: VhdHeader = {
      ...sourceHeader,
      tableOffset: layout.tableOffset,
      parentLocators: sourceHeader.parentLocators.map(() => EMPTY_LOCATOR),
    }
    const { footerBytes, prologue } = encodePrologue(layout, footer, header, order)
    this.#bat = bat
    this.#order = order
    this.#bitmapBytes = bitmapSize(sourceHeader.blockSize)
    this.#stride = this.#bitmapBytes + sourceHeader.blockSize
    this.#footerBytes = footerBytes
    this.#length = layout.length
    this.#phase = 'blocks'
    this.#next = -1
    this.#emit(prologue)
    this.#settled = true
    this.#resolve({ length: layout.length, footer, header })
    this.#nextBlock()
  }

  /** The next block in file order, or the tail once every block went through. */
  #nextBlock(): void {
    this.#next++
    const index = this.#order[this.#next]
    if (index === undefined) {
      this.#phase = 'tail'
      this.#afterBlocks = this.#position
      return
    }
    const offset = ((this.#bat as Uint32Array)[index] as number) * SECTOR_SIZE
    if (offset < this.#position) {
      throw new VhdError(
        'VHD_BLOCK_OVERLAP',
        `VHD block ${index} at byte ${offset} overlaps the previous block`,
        (this.#sourceHeader as VhdHeader).tableOffset + index * 4,
      )
    }
    this.#blockStart = offset
    this.#blockEnd = offset + this.#stride
  }

  /** Keeps the last 512 bytes seen after the last block: the trailing footer, at the end. */
  #keepTail(bytes: Buffer): void {
    const keep = FOOTER_SIZE
    if (bytes.length >= keep) {
      bytes.copy(this.#tail, 0, bytes.length - keep)
      this.#tailHeld = keep
      return
    }
    const stay = Math.min(this.#tailHeld, keep - bytes.length)
    this.#tail.copy(this.#tail, 0, this.#tailHeld - stay, this.#tailHeld)
    bytes.copy(this.#tail, stay)
    this.#tailHeld = stay + bytes.length
  }

  #emit(bytes: Buffer): void {
    this.#emitted += bytes.length
    this.push(bytes)
  }

  /** The source ended: it must have ended after a whole VHD. */
  #finish(): void {
    if (this.#phase === 'footer' || this.#phase === 'header' || this.#phase === 'bat') {
      if (this.#phase === 'footer') {
        const start = Buffer.concat(this.#parts, this.#held)
        checkCookie(start)
      }
      const what =
        this.#position < this.#at
          ? this.#phase === 'header'
            ? 'gap before the dynamic header'
            : 'gap before the BAT'
          : { footer: 'footer', header: 'dynamic header', bat: 'BAT' }[this.#phase]
      throw truncated(what, this.#position)
    }
    if (this.#phase === 'blocks') {
      const index = this.#order[this.#next] as number
      const what =
        this.#position < this.#blockStart
          ? `gap before block ${index}`
          : this.#position < this.#blockStart + this.#bitmapBytes
            ? `bitmap of block ${index}`
            : `data of block ${index}`
      throw truncated(what, this.#position)
    }
    if (this.#tailHeld < FOOTER_SIZE) {
      throw new VhdError(
        'VHD_TRUNCATED',
        `VHD stream ended ${this.#tailHeld} bytes after the last block, before the trailing footer`,
        this.#afterBlocks + this.#tailHeld,
      )
    }
    const offset = this.#position - FOOTER_SIZE
    decodeFooter(this.#tail, offset)
    if (!this.#tail.equals(this.#leading as Buffer)) {
      throw new VhdError('VHD_FOOTER_MISMATCH', 'VHD trailing footer differs from the footer copy at the start', offset)
    }
    this.#emit(this.#footerBytes as Buffer)
    // the parser guarantees every BAT block came through; this guards the arithmetic
    if (this.#emitted !== this.#length) {
      throw new VhdError(
        'VHD_LENGTH_MISMATCH',
        `normalised VHD is ${this.#emitted} bytes, announced ${this.#length}`,
        this.#emitted,
      )
    }
  }
}

function toBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (typeof value === 'string') return Buffer.from(value, 'latin1')
  throw new TypeError('a VHD source must yield Buffers')
}

function truncated(what: string, offset: number): VhdError {
  return new VhdError('VHD_TRUNCATED', `VHD stream ended inside the ${what}`, offset)
}
