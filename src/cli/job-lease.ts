import { LeaseError } from '../errors.js'
import { withFileLock } from '../jobs/file-lock.js'
import type { JobStore } from '../jobs/job-store.js'
import type { Job } from '../jobs/types.js'

/** A pass runs for hours at most; a lease older than this is debris of a lost machine. */
const LEASE_STALE_MS = 24 * 3_600_000

/**
 * Runs `fn` holding the job's lease, a lock file beside the job store, so that no two commands
 * that write the job's snapshots and replicas (a pass, a failback) overlap. When another holds
 * it: `JOB_RUNNING`, `job "<name>" <busy> (<who holds it>)`, exit 3.
 */
export async function withJobLease<T>(
  store: JobStore,
  job: Job,
  signal: AbortSignal,
  busy: string,
  fn: () => Promise<T>,
): Promise<T> {
  let holding = false
  try {
    return await withFileLock(
      `${store.file}.${job.id}.lease`,
      () => {
        holding = true
        return fn()
      },
      { timeoutMs: 0, staleMs: LEASE_STALE_MS, signal },
    )
  } catch (error) {
    // a LeaseError from inside fn is fn's own, not a busy lease
    if (!holding && error instanceof LeaseError)
      throw new LeaseError('JOB_RUNNING', `job "${job.name}" ${busy} (${error.message})`, { cause: error })
    throw error
  }
}
