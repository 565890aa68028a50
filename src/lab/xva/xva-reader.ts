/**
 * Receiving the disk chunks of an XVA after `ova.xml`, with the rules of XAPI's
 * `Stream_vdi.recv_all`: disks in export-id order; for each, members `<id>/<suffix>` with
 * suffixes increasing as strings; a gap in chunk numbers is that many chunks of zeros (of the
 * size of the very first chunk of the import), which the lab leaves unwritten because new VDIs
 * read as zeros; every chunk is followed by its checksum member (`.xxhash` = XXH64, `.checksum`
 * = SHA-1 of older XAPI), verified unless `force`; a disk ends when its bytes reach its size.
 */
import { createHash } from 'node:crypto'
import { XvaFormatError } from '../lab-error.js'
import type { TarReader } from './tar.js'
import { XVA_CHUNK_SIZE } from './xva-writer.js'
import { xxh64Hex } from './xxh64.js'

/** One disk to receive. */
export interface XvaDiskTarget {
  /** export id (`Ref:3`) */
  readonly id: string
  /** bytes the stream holds for it: the virtual size recorded in ova.xml */
  readonly size: number
  write(offset: number, data: Buffer): Promise<void>
}

export interface ReceiveOptions {
  /** export_vsn of ova.xml: 0 means no inline checksums */
  readonly exportVsn: number
  /** accept chunks whose checksum does not match (XAPI's `force`) */
  readonly force: boolean
  /** called before each member, may throw (a cancelled task) */
  readonly beforeChunk?: () => void
  /** disk bytes covered so far, zeros included */
  readonly onProgress?: (covered: number) => void
}

/** The largest chunk member accepted; XAPI writes 1 MiB ones. */
const MAX_CHUNK = 4 * XVA_CHUNK_SIZE

function checksumOf(extension: string, data: Buffer): string | undefined {
  if (extension === '.xxhash') return xxh64Hex(data)
  if (extension === '.checksum') return createHash('sha1').update(data).digest('hex')
  return undefined
}

/** Reads every disk's chunks from `tar` (positioned after ova.xml) into `disks`. */
export async function receiveDisks(
  tar: TarReader,
  disks: readonly XvaDiskTarget[],
  options: ReceiveOptions,
): Promise<void> {
  const ordered = [...disks].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  let firstChunkLength = -1
  let covered = 0
  for (const disk of ordered) {
    let offset = 0
    let lastSuffix = '-1'
    while (offset < disk.size) {
      options.beforeChunk?.()
      const entry = await tar.next()
      if (entry === undefined)
        throw new XvaFormatError('XVA_TRUNCATED', `XVA ended before the last chunk of ${disk.id}`, tar.position)
      if (firstChunkLength < 0) firstChunkLength = entry.size
      if (!entry.name.startsWith(`${disk.id}/`))
        throw invalid(`expected a chunk of ${disk.id}, got ${entry.name}`, entry.offset)
      const suffix = entry.name.slice(disk.id.length + 1)
      if (!/^\d+$/.test(suffix) || suffix <= lastSuffix)
        throw invalid(`chunk ${entry.name} does not follow ${disk.id}/${lastSuffix}`, entry.offset)
      const skipped = (Number(suffix) - Number(lastSuffix) - 1) * firstChunkLength
      const data = await tar.body(MAX_CHUNK)
      const at = offset + skipped
      if (at + data.length > disk.size)
        throw new XvaFormatError(
          'XVA_BEYOND_DISK',
          `chunk ${entry.name} ends at byte ${at + data.length} of a ${disk.size}-byte disk`,
          entry.offset,
        )
      // a zero-length chunk is XAPI's keep-alive for idle firewalls: nothing to write
      if (data.length > 0) await disk.write(at, data)

      const sumEntry = await tar.next()
      if (sumEntry === undefined)
        throw new XvaFormatError('XVA_TRUNCATED', `XVA ended before the checksum of ${entry.name}`, tar.position)
      const dot = sumEntry.name.lastIndexOf('.')
      const extension = dot === -1 ? '' : sumEntry.name.slice(dot)
      const recomputed = checksumOf(extension, data)
      if (recomputed === undefined) throw invalid(`Found unsupported checksum file: ${sumEntry.name}`, sumEntry.offset)
      if (sumEntry.name.slice(0, dot) !== entry.name)
        throw invalid(`checksum member ${sumEntry.name} does not belong to ${entry.name}`, sumEntry.offset)
      const original = (await tar.body(1024)).toString('latin1')
      if (options.exportVsn > 0 && original !== recomputed && !options.force) {
        throw new XvaFormatError(
          'XVA_CHECKSUM_MISMATCH',
          `Block ${entry.name} checksum failed: original = ${original}; recomputed = ${recomputed}`,
          sumEntry.offset,
        )
      }
      offset = at + data.length
      covered += skipped + data.length
      lastSuffix = suffix
      options.onProgress?.(covered)
    }
  }
}

function invalid(message: string, offset: number): XvaFormatError {
  return new XvaFormatError('XVA_INVALID', message, offset)
}
