/**
 * `seed`: make a hand-made copy of a source snapshot into the base of a job's next delta. Reads
 * both pools, plans (every refusal before any write), optionally compares the disks' content,
 * then writes the plan's changes. Progress goes out as typed events; nothing is printed.
 */
import type { XapiClient } from '../../xapi/client.js'
import { fetchPoolRecords } from '../records.js'
import { applySeed } from './apply-seed.js'
import { planSeed, type SeedPlan } from './plan-seed.js'
import type { SeedRequest } from './seed-records.js'
import { SeedRefusal } from './seed-refusal.js'
import { verifySeed, type DiskVerification, type VerifyMode } from './verify-seed.js'

export type SeedEvent =
  | { readonly kind: 'seed-plan'; readonly plan: SeedPlan; readonly dryRun: boolean }
  | {
      readonly kind: 'seed-verify-progress'
      readonly userdevice: string
      readonly side: 'source' | 'target'
      /** bytes hashed so far: every byte, or (`--verify=sample`) those of the sampled blocks */
      readonly bytes: number
      /** bytes to hash: the disk's size, or the sampled blocks' */
      readonly total: number
      /** bytes of the export read so far, the blocks skipped between samples included */
      readonly read: number
    }
  | { readonly kind: 'seed-verified'; readonly disks: readonly DiskVerification[] }
  | { readonly kind: 'seed-warning'; readonly code: string; readonly message: string }

export type SeedEventSink = (event: SeedEvent) => void

export interface SeedOptions {
  readonly request: SeedRequest
  readonly source: XapiClient
  /** the same client as `source` when the copy is on the source pool */
  readonly target: XapiClient
  /** plan (and verify) only */
  readonly dryRun?: boolean
  readonly verify?: VerifyMode
  readonly sampleBlocks?: number
  readonly random?: () => number
  readonly signal?: AbortSignal
  readonly onEvent?: SeedEventSink
  readonly now?: () => Date
}

export interface SeedResult {
  readonly plan: SeedPlan
  /** false on a dry run, or when the seed was already in place */
  readonly written: boolean
  readonly verification?: readonly DiskVerification[]
}

/**
 * Validates, optionally verifies, and writes a seed.
 * @throws SeedRefusal (exit 5, nothing written) — including `SEED_CONTENT_MISMATCH` from `verify`
 */
export async function seed(o: SeedOptions): Promise<SeedResult> {
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  const emit: SeedEventSink = o.onEvent ?? (() => undefined)
  const samePool = o.source === o.target
  const sourceRecords = await fetchPoolRecords(o.source, opts)
  const targetRecords = samePool ? sourceRecords : await fetchPoolRecords(o.target, opts)
  const plan = planSeed(o.request, sourceRecords, targetRecords, {
    samePool,
    ...(o.now === undefined ? {} : { now: o.now() }),
  })
  for (const w of plan.warnings) emit({ kind: 'seed-warning', code: w.code, message: w.message })

  let verification: DiskVerification[] | undefined
  if (o.verify !== undefined) {
    verification = await verifySeed(plan.pairs, {
      source: o.source,
      target: o.target,
      mode: o.verify,
      ...(o.sampleBlocks === undefined ? {} : { sampleBlocks: o.sampleBlocks }),
      ...(o.random === undefined ? {} : { random: o.random }),
      ...opts,
      onProgress: p => emit({ kind: 'seed-verify-progress', ...p }),
    })
    emit({ kind: 'seed-verified', disks: verification })
    const bad = verification.find(v => !v.equal)
    if (bad !== undefined) {
      const where = bad.firstDifferentBlock === undefined ? '' : ` (block ${bad.firstDifferentBlock} first)`
      throw new SeedRefusal(
        'SEED_CONTENT_MISMATCH',
        `disk ${bad.userdevice}: target disk ${bad.target} differs from snapshot disk ${bad.source}${where}; the copy is not of this snapshot or was modified — export and import it again`,
      )
    }
  }

  emit({ kind: 'seed-plan', plan, dryRun: o.dryRun === true })
  if (o.dryRun === true || plan.changes.length === 0) {
    return { plan, written: false, ...(verification === undefined ? {} : { verification }) }
  }
  await applySeed(plan, { source: o.source, target: o.target, ...opts })
  return { plan, written: true, ...(verification === undefined ? {} : { verification }) }
}
