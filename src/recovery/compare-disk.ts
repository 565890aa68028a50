/**
 * Byte comparison of one replica disk with the source snapshot disk it is a copy of, per 2 MiB
 * block (sha256 of each). `full` streams both raw exports side by side and stops at the first
 * difference. `sample` reads only the sampled blocks: over NBD where the host offers it (random
 * access: nothing else is read), else from the raw export up to the last sampled block — which
 * the caller is told about, since on a large disk that is most of it.
 */
import { createHash } from 'node:crypto'
import { AbortedError, isXenCrError } from '../errors.js'
import { hashExport } from '../replication/seed/verify-seed.js'
import { sampleBlocks } from '../replication/seed/sample-blocks.js'
import { ByteReader } from '../vhd/byte-reader.js'
import { VHD_BLOCK_SIZE } from '../vhd/layout.js'
import type { XapiClient } from '../xapi/client.js'
import { NbdClient } from '../xapi/nbd-client.js'
import { getNbdInfo } from '../xapi/nbd-info.js'
import { exportVdi } from '../xapi/transfer.js'
import type { Ref } from '../xapi/types.js'
import type { DiskComparison, SideRead } from './check-events.js'

export interface DiskSide {
  readonly client: XapiClient
  readonly ref: Ref<'VDI'>
  readonly uuid: string
  readonly name: string
  readonly virtualSize: number
}

export interface DiskPair {
  readonly userdevice: string
  /** the source snapshot disk */
  readonly source: DiskSide
  /** the replica disk */
  readonly target: DiskSide
}

export interface CompareOptions {
  /** sample: this many random blocks per disk; undefined: every block */
  readonly sample?: number
  /** a number in [0, 1); injectable so tests can pin the sample */
  readonly random?: () => number
  readonly signal?: AbortSignal
  /** bytes compared so far (both sides have read them) of `total` */
  readonly onProgress?: (bytes: number, total: number) => void
  /** the side had to fall back to a streamed export, and why */
  readonly onFallback?: (side: 'source' | 'target', reason: string) => void
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

/** Length of block `index` of a disk of `size` bytes (the last one may be short). */
function blockLength(index: number, size: number): number {
  return Math.min(VHD_BLOCK_SIZE, size - index * VHD_BLOCK_SIZE)
}

/** Compares the pair; resolves with what was found, throws only when reading failed. */
export async function compareDisk(pair: DiskPair, options: CompareOptions): Promise<DiskComparison> {
  const base = {
    userdevice: pair.userdevice,
    replicaDisk: { uuid: pair.target.uuid, name: pair.target.name },
    snapshotDisk: { uuid: pair.source.uuid, name: pair.source.name },
    virtualSize: pair.target.virtualSize,
    mode: options.sample === undefined ? ('full' as const) : ('sample' as const),
  }
  if (pair.source.virtualSize !== pair.target.virtualSize) {
    const none: SideRead = { via: options.sample === undefined ? 'stream' : 'nbd', bytes: 0 }
    return { ...base, equal: false, sizeDiffers: true, blocksCompared: 0, source: none, target: none }
  }
  return options.sample === undefined ? compareFull(pair, base, options) : compareSample(pair, base, options)
}

type Base = Pick<DiskComparison, 'userdevice' | 'replicaDisk' | 'snapshotDisk' | 'virtualSize' | 'mode'>

async function compareFull(pair: DiskPair, base: Base, options: CompareOptions): Promise<DiskComparison> {
  const size = pair.target.virtualSize
  const local = new AbortController()
  const onAbort = (): void => local.abort(options.signal?.reason)
  options.signal?.addEventListener('abort', onAbort, { once: true })
  const exports = await Promise.allSettled(
    [pair.source, pair.target].map(side => exportVdi(side.client, side.ref, { format: 'raw', signal: local.signal })),
  )
  try {
    const [s, t] = exports
    if (s?.status !== 'fulfilled' || t?.status !== 'fulfilled') {
      local.abort(new AbortedError('the other side of the comparison failed'))
      for (const e of exports) if (e.status === 'fulfilled') await e.value.done.catch(() => undefined)
      throw exports.find((e): e is PromiseRejectedResult => e.status === 'rejected')!.reason
    }
    // Stopping early: an export whose body all arrived is done only once its reader saw the
    // end, which nobody will read now, so the streams are destroyed as well as aborted.
    const stop = (reason: string): void => {
      local.abort(new AbortedError(reason))
      for (const e of [s.value, t.value]) e.stream.destroy()
    }
    const readers = [s.value, t.value].map(
      e => new ByteReader((e.stream as AsyncIterable<unknown>)[Symbol.asyncIterator](), local.signal),
    )
    const blocks = Math.ceil(size / VHD_BLOCK_SIZE)
    let compared = 0
    let firstDifference: DiskComparison['firstDifference']
    let lastPercent = -1
    try {
      for (let block = 0; block < blocks; block++) {
        const length = blockLength(block, size)
        const [a, b] = await Promise.all(readers.map(r => r.readUpTo(length)))
        // A short read means a stream ended early; its `done` says why (checked below).
        if (a === undefined || b === undefined || a.length < length || b.length < length) break
        compared++
        if (sha256(a) !== sha256(b)) {
          firstDifference = { block, offset: block * VHD_BLOCK_SIZE }
          break
        }
        const bytes = block * VHD_BLOCK_SIZE + length
        const percent = Math.floor((bytes * 100) / size)
        if (percent !== lastPercent) {
          lastPercent = percent
          options.onProgress?.(bytes, size)
        }
      }
      // Pull each stream to its end: an export is done only once its consumer saw the end.
      if (firstDifference === undefined) await Promise.all(readers.map(r => r.readUpTo(1)))
    } catch (error) {
      // the transfer's own error (its task, the host) is more precise than the reader's
      stop('comparison failed')
      const settled = await Promise.allSettled([s.value.done, t.value.done])
      const cause = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason as unknown
      throw isAborted(options.signal) ? new AbortedError('verification aborted', { cause: error }) : (cause ?? error)
    }
    const read = (r: ByteReader): SideRead => ({ via: 'stream', bytes: r.position })
    const [sourceRead, targetRead] = [read(readers[0]!), read(readers[1]!)]
    if (firstDifference !== undefined) {
      stop('difference found')
      await Promise.allSettled([s.value.done, t.value.done])
    } else {
      await Promise.all([s.value.done, t.value.done])
    }
    return {
      ...base,
      equal: firstDifference === undefined,
      blocksCompared: compared,
      ...(firstDifference === undefined ? {} : { firstDifference }),
      source: sourceRead,
      target: targetRead,
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
  }
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

function errorText(error: unknown): string {
  return isXenCrError(error) || error instanceof Error ? error.message : String(error)
}

/**
 * The digests of `blocks` of one side, over NBD when one of the hosts XAPI names for the disk
 * accepts us, else from the raw export.
 */
async function sampleSide(
  side: DiskSide,
  blocks: readonly number[],
  options: CompareOptions,
  onBytes: (bytes: number) => void,
  fallback: (reason: string) => void,
): Promise<{ digests: string[]; read: SideRead }> {
  const opts = options.signal === undefined ? {} : { signal: options.signal }
  const reasons: string[] = []
  let nbd: NbdClient | undefined
  try {
    const infos = await getNbdInfo(side.client, side.ref, opts)
    if (infos.length === 0) reasons.push('VDI.get_nbd_info offers no NBD export (no network of the pool has NBD on)')
    for (const info of infos) {
      try {
        nbd = await NbdClient.connect(info, opts)
        break
      } catch (error) {
        if (isAborted(options.signal)) throw error
        reasons.push(`${info.address}:${info.port}: ${errorText(error)}`)
      }
    }
  } catch (error) {
    if (isAborted(options.signal)) throw new AbortedError('verification aborted', { cause: error })
    reasons.push(`VDI.get_nbd_info failed: ${errorText(error)}`)
  }
  if (nbd !== undefined) {
    const digests: string[] = []
    let bytes = 0
    try {
      for (const block of blocks) {
        const data = await nbd.read(block * VHD_BLOCK_SIZE, blockLength(block, side.virtualSize))
        bytes += data.length
        onBytes(bytes)
        digests.push(sha256(data))
      }
    } catch (error) {
      if (isAborted(options.signal)) throw new AbortedError('verification aborted', { cause: error })
      throw error
    } finally {
      await nbd.close()
    }
    return { digests, read: { via: 'nbd', bytes } }
  }
  fallback(reasons.join('; '))
  let bytes = 0
  const digests = await hashExport(side.client, side.ref, side.virtualSize, blocks, options.signal, b => {
    bytes = b
    onBytes(b)
  })
  return { digests, read: { via: 'stream', bytes } }
}

async function compareSample(pair: DiskPair, base: Base, options: CompareOptions): Promise<DiskComparison> {
  const size = pair.target.virtualSize
  const blocks = sampleBlocks(Math.ceil(size / VHD_BLOCK_SIZE), options.sample ?? 0, options.random ?? Math.random)
  const total = blocks.reduce((sum, block) => sum + blockLength(block, size), 0)
  // Progress is what both sides have read; a streamed side counts only the sampled bytes it passed.
  const progress = { source: 0, target: 0 }
  const sampledBefore = (offset: number): number =>
    blocks.reduce(
      (sum, block) => sum + Math.max(0, Math.min(blockLength(block, size), offset - block * VHD_BLOCK_SIZE)),
      0,
    )
  const report = (side: 'source' | 'target', via: 'nbd' | 'stream') => (bytes: number) => {
    progress[side] = via === 'nbd' ? bytes : sampledBefore(bytes)
    options.onProgress?.(Math.min(progress.source, progress.target), total)
  }
  // One side failing (or an abort) stops the other rather than leaving it reading unobserved.
  const local = new AbortController()
  const onAbort = (): void => local.abort(options.signal?.reason)
  options.signal?.addEventListener('abort', onAbort, { once: true })
  const sides = (['source', 'target'] as const).map(side => {
    let via: 'nbd' | 'stream' = 'nbd'
    const run = sampleSide(
      pair[side],
      blocks,
      { ...options, signal: local.signal },
      bytes => report(side, via)(bytes),
      reason => {
        via = 'stream'
        options.onFallback?.(side, reason)
      },
    )
    run.catch(() => local.abort(new AbortedError('the other side of the comparison failed')))
    return run
  })
  const settled = await Promise.allSettled(sides)
  options.signal?.removeEventListener('abort', onAbort)
  const [sr, tr] = settled
  if (sr?.status !== 'fulfilled' || tr?.status !== 'fulfilled') {
    if (isAborted(options.signal)) throw new AbortedError('verification aborted')
    // the side that failed first, not the one stopped because of it
    const failures = settled
      .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      .map((r): unknown => r.reason)
    throw failures.find(e => !(e instanceof AbortedError)) ?? failures[0]
  }
  const [s, t] = [sr.value, tr.value]
  const differing = blocks.filter((_, i) => s.digests[i] !== t.digests[i])
  const first = differing[0]
  return {
    ...base,
    equal: differing.length === 0,
    blocksCompared: blocks.length,
    sampled: blocks,
    ...(first === undefined ? {} : { firstDifference: { block: first, offset: first * VHD_BLOCK_SIZE } }),
    differingBlocks: differing.length,
    source: s.read,
    target: t.read,
  }
}
