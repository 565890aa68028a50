/**
 * How long a VHD export must at least be, read from its footer, header and BAT as they pass.
 * XAPI sends exports without Content-Length and closes the connection at the end, so a cut
 * connection looks like a normal end; the BAT says where the last block ends, which gives a
 * length to check and a progress total (exact for vhd-tool's layout, reference §5.2).
 */
import { decodeFooter } from '../vhd/footer.js'
import { decodeHeader } from '../vhd/header.js'
import { BAT_UNUSED, FOOTER_SIZE, HEADER_SIZE, SECTOR_SIZE, batSize, bitmapSize } from '../vhd/layout.js'

/** Headers, BAT and padding we are willing to hold (a 2 TiB disk's BAT is 4 MiB). */
const MAX_PREFIX = 16 * 1024 * 1024

export class VhdExtentProbe {
  #chunks: Buffer[] = []
  #held = 0
  #needed = FOOTER_SIZE
  #headerOffset: number | undefined
  #tableOffset: number | undefined
  #entries = 0
  #blockBytes = 0
  #done = false
  /** bytes the VHD needs from its BAT: last block end + footer; undefined until known (or if not a VHD) */
  minimumLength: number | undefined

  /** Looks at the next chunk of the stream (chunks are kept only until the BAT was read). */
  feed(chunk: Buffer): void {
    if (this.#done) return
    this.#chunks.push(chunk)
    this.#held += chunk.length
    try {
      while (!this.#done && this.#held >= this.#needed) this.#step()
    } catch {
      // Not something we can read as a VHD: the consumer's parser will say what is wrong.
      this.#stop()
    }
    if (this.#held > MAX_PREFIX) this.#stop()
  }

  #step(): void {
    const prefix = Buffer.concat(this.#chunks, this.#held)
    this.#chunks = [prefix]
    if (this.#headerOffset === undefined) {
      const footer = decodeFooter(prefix.subarray(0, FOOTER_SIZE), 0)
      this.#headerOffset = footer.dataOffset
      this.#needed = footer.dataOffset + HEADER_SIZE
    } else if (this.#tableOffset === undefined) {
      const header = decodeHeader(
        prefix.subarray(this.#headerOffset, this.#headerOffset + HEADER_SIZE),
        this.#headerOffset,
      )
      this.#tableOffset = header.tableOffset
      this.#entries = header.maxTableEntries
      this.#blockBytes = bitmapSize(header.blockSize) + header.blockSize
      this.#needed = header.tableOffset + batSize(header.maxTableEntries)
    } else {
      let end = this.#tableOffset + batSize(this.#entries)
      for (let index = 0; index < this.#entries; index++) {
        const sector = prefix.readUInt32BE(this.#tableOffset + index * 4)
        if (sector !== BAT_UNUSED) end = Math.max(end, sector * SECTOR_SIZE + this.#blockBytes)
      }
      this.minimumLength = end + FOOTER_SIZE
      this.#stop()
    }
  }

  #stop(): void {
    this.#done = true
    this.#chunks = []
    this.#held = 0
  }
}
