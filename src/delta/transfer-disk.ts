/**
 * One disk from source to target: `GET /export_raw_vdi` (delta against `base` when given) piped
 * through the job's rate limit and a byte counter straight into `PUT /import_raw_vdi`. Nothing is
 * buffered beyond what the VHD layer holds (one block). Succeeds only when every byte arrived,
 * the import task succeeded and the export task succeeded.
 *
 * A transfer cut mid-stream (a reset, a stall, a host that went away and came back, a 5xx, an
 * import task refused with a not-applied code) starts this disk again, the others going on; the
 * target disk is reused, not replaced: a VHD import writes whole blocks and only the blocks its
 * stream carries, so sending the same stream again into a disk holding part of it leaves exactly
 * what one uninterrupted transfer would have (nothing to destroy, nothing left half-written).
 */
import { pipeline } from 'node:stream'
import { OperationError, isXenCrError, type XenCrError } from '../errors.js'
import type { XapiClient } from '../xapi/client.js'
import { DISK_RETRY, RetryBudget, classifyTransferFailure, type RetryPolicy } from '../xapi/retry.js'
import { exportVdi, importVdi, type TransferProgress } from '../xapi/transfer.js'
import type { Ref } from '../xapi/types.js'
import { createRateLimitStream, type RateLimiter } from './rate-limit.js'

export interface DiskTransfer {
  readonly source: XapiClient
  /** the source snapshot disk */
  readonly vdi: Ref<'VDI'>
  /** the source base snapshot disk: a delta export; absent: full */
  readonly base?: Ref<'VDI'>
  readonly target: XapiClient
  /** the target disk (a fresh VDI or a clone of the base replica's disk) */
  readonly targetVdi: Ref<'VDI'>
  readonly limiter?: RateLimiter
  readonly signal?: AbortSignal
  /**
   * bytes of the VHD stream read from the source so far and, once its header and block table
   * went by, its exact length (the export meter's reports: at most one per MiB, and the last)
   */
  readonly onProgress?: (progress: TransferProgress) => void
  /** called before the disk starts again after a transient failure (`attempt` is the next one, from 2) */
  readonly onRetry?: (error: XenCrError, attempt: number) => void
  /** restarts of a cut transfer; default {@link DISK_RETRY} */
  readonly retry?: RetryPolicy
}

export interface DiskTransferResult {
  /** bytes of the VHD stream the source sent */
  readonly bytes: number
}

/** Streams one disk from the source snapshot into the target disk; resolves with the VHD bytes sent. */
export async function transferDisk(t: DiskTransfer): Promise<DiskTransferResult> {
  const budget = new RetryBudget(t.retry ?? DISK_RETRY)
  for (;;) {
    try {
      return await transferOnce(t)
    } catch (error) {
      if (t.signal?.aborted === true || classifyTransferFailure(error) === 'logical') throw error
      if (!(await budget.next(t.signal))) throw error
      t.onRetry?.(
        isXenCrError(error)
          ? error
          : new OperationError(
              'DISK_TRANSFER_FAILED',
              `transfer of VDI ${t.vdi} failed: ${error instanceof Error ? error.message : String(error)}`,
              {
                cause: error,
              },
            ),
        budget.attempts,
      )
    }
  }
}

async function transferOnce(t: DiskTransfer): Promise<DiskTransferResult> {
  const signal = t.signal
  const exported = await exportVdi(t.source, t.vdi, {
    format: 'vhd',
    ...(t.base === undefined ? {} : { base: t.base }),
    ...(signal === undefined ? {} : { signal }),
    ...(t.onProgress === undefined ? {} : { onProgress: t.onProgress }),
  })
  // With a rate limit, the pipeline ends in a Transform that importVdi consumes; an error
  // anywhere destroys every stage (so the export connection is closed too) and is reported here.
  // Without one, importVdi reads the export's stream itself: a stage less per chunk.
  let pipeError: Error | undefined
  const piped =
    t.limiter === undefined
      ? exported.stream
      : pipeline(exported.stream, createRateLimitStream(t.limiter, signal), (error: Error | null) => {
          if (error) pipeError = error
        })
  const importing = importVdi(t.target, t.targetVdi, piped, {
    format: 'vhd',
    ...(signal === undefined ? {} : { signal }),
  }).catch((error: unknown) => {
    // A refused import must not leave the export connection open (XO #5721: dom0 leftovers).
    piped.destroy()
    exported.stream.destroy()
    throw error
  })
  const [imported, exportDone] = await Promise.allSettled([importing, exported.done])
  if (imported.status === 'rejected') throw imported.reason
  if (exportDone.status === 'rejected') throw exportDone.reason
  if (pipeError !== undefined) {
    throw new OperationError('DISK_TRANSFER_FAILED', `transfer of VDI ${t.vdi} failed: ${pipeError.message}`, {
      cause: pipeError,
    })
  }
  return { bytes: exported.bytes }
}
