import { Readable } from 'node:stream'
import { VhdError } from '../errors.js'
import type { VhdFooter } from './footer.js'
import { EMPTY_LOCATOR } from './header.js'
import type { VhdHeader } from './header.js'
import { BAT_UNUSED, canonicalLayout } from './layout.js'
import { readVhd } from './reader.js'
import { encodePrologue } from './writer.js'
import type { VhdItem } from './reader.js'

/**
 * Re-emits a dynamic or differencing VHD in the canonical layout (reference §5.2) with the same
 * blocks and sector bitmaps, so that its exact length is known from footer, header and BAT
 * before any block is read: an import then always has a true Content-Length (XAPI refuses
 * chunked uploads, and the 1 PiB trick ends in a failed task). Blocks keep their source file
 * order. Parent locators are dropped (importers ignore them); parent id, name and time stamp
 * stay. Returns the footer and header as re-emitted. Malformed input rejects with a
 * {@link VhdError} before any byte is emitted if it is in footer, header or BAT, and otherwise
 * errors the stream.
 */
export async function normaliseVhd(
  source: Readable,
  options: { signal?: AbortSignal } = {},
): Promise<{ length: number; footer: VhdFooter; header: VhdHeader; stream: Readable }> {
  const items = readVhd(source, options)
  try {
    const sourceFooter = (await expectItem(items, 'footer')).footer
    const sourceHeader = (await expectItem(items, 'header')).header
    const sourceBat = (await expectItem(items, 'bat')).bat

    const allocated: number[] = []
    for (let index = 0; index < sourceBat.length; index++) if (sourceBat[index] !== BAT_UNUSED) allocated.push(index)
    // the reader yields blocks in file order, so the new BAT assigns places in that order
    allocated.sort((a, b) => (sourceBat[a] as number) - (sourceBat[b] as number))
    const layout = canonicalLayout(sourceHeader.maxTableEntries, sourceHeader.blockSize, allocated.length)

    const footer: VhdFooter = { ...sourceFooter, dataOffset: layout.headerOffset }
    const header: VhdHeader = {
      ...sourceHeader,
      tableOffset: layout.tableOffset,
      parentLocators: sourceHeader.parentLocators.map(() => EMPTY_LOCATOR),
    }
    const { footerBytes, prologue } = encodePrologue(layout, footer, header, allocated)

    async function* generate(): AsyncGenerator<Buffer> {
      try {
        yield prologue
        let emitted = prologue.length
        for (;;) {
          const next = await items.next()
          if (next.done === true) break
          const item = next.value
          if (item.kind === 'block') {
            yield item.bitmap
            yield item.data
            emitted += item.bitmap.length + item.data.length
          } else if (item.kind === 'end') {
            yield footerBytes
            emitted += footerBytes.length
          }
        }
        // the reader guarantees every BAT block came through; this guards the arithmetic
        if (emitted !== layout.length) {
          throw new VhdError(
            'VHD_LENGTH_MISMATCH',
            `normalised VHD is ${emitted} bytes, announced ${layout.length}`,
            emitted,
          )
        }
      } finally {
        await items.return(undefined)
      }
    }
    return { length: layout.length, footer, header, stream: Readable.from(generate(), { objectMode: false }) }
  } catch (error) {
    await items.return(undefined)
    throw error
  }
}

async function expectItem<K extends VhdItem['kind']>(
  items: AsyncGenerator<VhdItem>,
  kind: K,
): Promise<Extract<VhdItem, { kind: K }>> {
  const next = await items.next()
  if (next.done === true || next.value.kind !== kind) {
    throw new VhdError('VHD_TRUNCATED', `VHD stream ended before its ${kind}`, 0)
  }
  return next.value as Extract<VhdItem, { kind: K }>
}
