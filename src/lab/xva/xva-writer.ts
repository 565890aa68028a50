/**
 * The byte stream of an XVA (XAPI `export.ml` + `stream_vdi.ml`): `ova.xml`, then for each disk
 * in order its 1 MiB chunks as members `<id>/<8-digit chunk number>`, each followed by a
 * `<member>.xxhash` holding XXH64 of the chunk in 16 uppercase hex digits; then the tar end.
 * All-zero chunks are left out except the first and the last of each disk — an importer needs
 * those two to learn the chunk size and to know where the disk ends. One chunk is in memory at
 * a time.
 */
import { OVA_XML } from './ova-xml.js'
import { TAR_END, tarHeader, tarPadding } from './tar.js'
import { xxh64Hex } from './xxh64.js'

/** XVA chunk size (`stream_vdi.ml` `chunk_size`). */
export const XVA_CHUNK_SIZE = 1024 * 1024

/** One disk to stream. */
export interface XvaDiskSource {
  /** export id, the member directory (`Ref:3`) */
  readonly id: string
  /** bytes to stream: the VDI's virtual size */
  readonly size: number
  /**
   * Chunk numbers that may hold data, ascending; every other chunk reads as zeros and is not
   * read at all (the lab knows its allocated blocks, as XAPI knows a VHD's).
   */
  readonly candidates: readonly number[]
  read(offset: number, length: number): Promise<Buffer>
}

/** `Ref:3/00000042` */
export function chunkMemberName(id: string, chunk: number): string {
  return `${id}/${String(chunk).padStart(8, '0')}`
}

/** Called after each chunk position (written or skipped) with the disk bytes covered so far. */
export type ChunkProgress = (coveredBytes: number) => void

/** The XVA as a stream of buffers; `beforeChunk` may throw to stop it (e.g. a cancelled task). */
export async function* xvaStream(
  ovaXml: string,
  disks: readonly XvaDiskSource[],
  options: { onProgress?: ChunkProgress; beforeChunk?: () => void } = {},
): AsyncGenerator<Buffer> {
  const xml = Buffer.from(ovaXml, 'utf8')
  yield Buffer.concat([tarHeader(OVA_XML, xml.length), xml, tarPadding(xml.length)])
  let covered = 0
  for (const disk of disks) {
    const count = Math.ceil(disk.size / XVA_CHUNK_SIZE)
    const last = count - 1
    const wanted = new Set(disk.candidates.filter(n => n >= 0 && n <= last))
    if (count > 0) {
      wanted.add(0)
      wanted.add(last)
    }
    let previous = -1
    for (const chunk of [...wanted].sort((a, b) => a - b)) {
      options.beforeChunk?.()
      const offset = chunk * XVA_CHUNK_SIZE
      const length = Math.min(XVA_CHUNK_SIZE, disk.size - offset)
      const data = await disk.read(offset, length)
      covered += (chunk - previous - 1) * XVA_CHUNK_SIZE + length
      previous = chunk
      if (chunk !== 0 && chunk !== last && isAllZero(data)) {
        options.onProgress?.(covered)
        continue
      }
      const name = chunkMemberName(disk.id, chunk)
      const sum = Buffer.from(xxh64Hex(data), 'ascii')
      yield Buffer.concat([tarHeader(name, length), data, tarPadding(length)])
      yield Buffer.concat([tarHeader(`${name}.xxhash`, sum.length), sum, tarPadding(sum.length)])
      options.onProgress?.(covered)
    }
  }
  yield TAR_END
}

const ZERO_CHUNK = Buffer.alloc(XVA_CHUNK_SIZE)

function isAllZero(data: Buffer): boolean {
  // a memcmp against zeros; chunks are at most one XVA chunk long
  return data.length <= ZERO_CHUNK.length
    ? ZERO_CHUNK.subarray(0, data.length).equals(data)
    : data.every(byte => byte === 0)
}
