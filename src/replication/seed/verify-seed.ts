/**
 * Content check of a seed before anything is written: each snapshot disk against its target
 * disk, over XAPI's raw exports, streamed and hashed on the fly (nothing is buffered). `full`
 * hashes every byte; `sample` compares a random set of 2 MiB blocks and stops reading once the
 * last sampled block went by — XAPI's export cannot seek, so a sample saves hashing and the tail
 * of the stream, not the head.
 */
import { createHash, type Hash } from 'node:crypto'
import { AbortedError } from '../../errors.js'
import { VHD_BLOCK_SIZE } from '../../vhd/layout.js'
import type { XapiClient } from '../../xapi/client.js'
import { exportVdi } from '../../xapi/transfer.js'
import { asRef } from '../../xapi/types.js'
import { throttleProgress } from '../progress-throttle.js'
import type { SeedDiskPair } from './seed-records.js'
import { sampleBlocks } from './sample-blocks.js'

export { sampleBlocks } from './sample-blocks.js'

export type VerifyMode = 'full' | 'sample'

export interface DiskVerification {
  readonly userdevice: string
  readonly source: string
  readonly target: string
  readonly mode: VerifyMode
  /** the compared blocks (sample mode) */
  readonly blocks?: readonly number[]
  /** full: the sha256 of each whole disk */
  readonly sourceSha256?: string
  readonly targetSha256?: string
  /** sample: the first block whose hashes differ */
  readonly firstDifferentBlock?: number
  readonly equal: boolean
}

export interface VerifyOptions {
  readonly source: XapiClient
  readonly target: XapiClient
  readonly mode: VerifyMode
  /** blocks per disk in sample mode (default 8) */
  readonly sampleBlocks?: number
  /** a number in [0, 1); injectable so tests can pin the sample */
  readonly random?: () => number
  readonly signal?: AbortSignal
  /** at most a few times a second per export, and once at its end */
  readonly onProgress?: (p: VerifyProgress) => void
}

/** How far one side of one disk pair is. */
export interface VerifyProgress {
  readonly userdevice: string
  readonly side: 'source' | 'target'
  /** bytes hashed so far: every byte (full), or the bytes of the sampled blocks (sample) */
  readonly bytes: number
  /** bytes to hash: the disk's size (full), or the sampled blocks' (sample) */
  readonly total: number
  /** bytes of the export read so far, blocks skipped between samples included */
  readonly read: number
}

/**
 * Streams one raw export, feeding the bytes of the selected blocks (or all bytes) to hashes.
 * Resolves with a digest per block (sample, in the ascending order of `blocks`) or one for the
 * disk (full). Also `verify`'s fallback when a host offers no NBD.
 */
export async function hashExport(
  client: XapiClient,
  vdiRef: string,
  total: number,
  blocks: readonly number[] | undefined,
  signal: AbortSignal | undefined,
  /** `read`: bytes of the export so far; `hashed`: those of them fed to a hash */
  onBytes: (read: number, hashed: number) => void,
): Promise<string[]> {
  const local = new AbortController()
  const onAbort = (): void => local.abort(signal?.reason)
  signal?.addEventListener('abort', onAbort, { once: true })
  const { stream, done } = await exportVdi(client, asRef<'VDI'>(vdiRef), { format: 'raw', signal: local.signal })
  const whole = blocks === undefined ? createHash('sha256') : undefined
  const perBlock = new Map<number, Hash>((blocks ?? []).map(b => [b, createHash('sha256')]))
  const end = blocks === undefined ? total : Math.min(total, ((blocks[blocks.length - 1] ?? -1) + 1) * VHD_BLOCK_SIZE)
  let offset = 0
  let hashed = 0
  let stoppedEarly = false
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (whole !== undefined) {
        whole.update(chunk)
        hashed += chunk.length
      } else {
        // A chunk may straddle block boundaries: feed each sampled block its own slice.
        let pos = 0
        while (pos < chunk.length) {
          const block = Math.floor((offset + pos) / VHD_BLOCK_SIZE)
          const upto = Math.min(chunk.length, (block + 1) * VHD_BLOCK_SIZE - offset)
          const hash = perBlock.get(block)
          if (hash !== undefined) {
            hash.update(chunk.subarray(pos, upto))
            hashed += upto - pos
          }
          pos = upto
        }
      }
      offset += chunk.length
      onBytes(offset, hashed)
      if (offset >= end && offset < total) {
        stoppedEarly = true
        break
      }
    }
    if (stoppedEarly) {
      local.abort(new AbortedError('sample complete'))
      await done.catch(() => undefined)
    } else {
      await done
    }
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
  if (signal?.aborted === true) throw new AbortedError('seed verification aborted')
  return whole !== undefined ? [whole.digest('hex')] : [...perBlock.values()].map(h => h.digest('hex'))
}

/** Compares every pair; the result says which are equal (callers refuse on any difference). */
export async function verifySeed(pairs: readonly SeedDiskPair[], options: VerifyOptions): Promise<DiskVerification[]> {
  const out: DiskVerification[] = []
  const random = options.random ?? Math.random
  for (const pair of pairs) {
    const nBlocks = Math.ceil(pair.virtualSize / VHD_BLOCK_SIZE)
    const blocks = options.mode === 'sample' ? sampleBlocks(nBlocks, options.sampleBlocks ?? 8, random) : undefined
    // The sampled blocks are what is compared, so they are what progress counts: the reading
    // between them is a cost of an export that cannot seek, not work towards the answer.
    const total =
      blocks === undefined
        ? pair.virtualSize
        : blocks.reduce((n, b) => n + Math.max(0, Math.min(VHD_BLOCK_SIZE, pair.virtualSize - b * VHD_BLOCK_SIZE)), 0)
    const progress = (side: 'source' | 'target') => {
      const report = throttleProgress((p: { bytes: number; total: number; read: number }) =>
        options.onProgress?.({ userdevice: pair.userdevice, side, bytes: p.bytes, total, read: p.read }),
      )
      return (read: number, hashed: number): void => report({ bytes: hashed, total, read })
    }
    const [s, t] = await Promise.all([
      hashExport(options.source, pair.source.ref, pair.virtualSize, blocks, options.signal, progress('source')),
      hashExport(options.target, pair.target.ref, pair.virtualSize, blocks, options.signal, progress('target')),
    ])
    const base = { userdevice: pair.userdevice, source: pair.source.uuid, target: pair.target.uuid, mode: options.mode }
    if (blocks === undefined) {
      out.push({ ...base, sourceSha256: s[0]!, targetSha256: t[0]!, equal: s[0] === t[0] })
    } else {
      const index = s.findIndex((h, i) => h !== t[i])
      out.push({ ...base, blocks, equal: index < 0, ...(index < 0 ? {} : { firstDifferentBlock: blocks[index]! }) })
    }
  }
  return out
}
