import { LeaseError } from '../errors.js'
import type { Job } from '../jobs/types.js'
import { selectVms } from '../replication/select-vms.js'
import {
  LeaseKeeper,
  acquireVmLease,
  currentOwner,
  describeHolder,
  leaseTiming,
  type VmLease,
} from '../replication/vm-lease.js'
import type { XapiClient } from '../xapi/client.js'
import { asRef } from '../xapi/types.js'

/**
 * Runs `fn` holding the job's lease in XAPI on every VM of the job on the source pool — the same
 * leases a pass takes, one per VM (`replication/vm-lease.ts`) — so that a command that writes
 * the job's snapshots and replicas as a whole (failback) never overlaps a pass on any controller.
 * When another run holds one of them: `JOB_RUNNING`, `job "<name>" <busy> (<who holds it>)`,
 * exit 3, and the leases taken so far are released.
 */
export async function withJobLease<T>(
  source: XapiClient,
  job: Job,
  signal: AbortSignal,
  busy: string,
  fn: () => Promise<T>,
): Promise<T> {
  const vms = await source.getAllRecords('VM', { signal })
  const owner = currentOwner()
  const timing = leaseTiming()
  const keeper = new LeaseKeeper(timing)
  const held: VmLease[] = []
  try {
    for (const vmRef of selectVms(job, vms)) {
      const taken = await acquireVmLease({
        client: source,
        vmRef: asRef<'VM'>(vmRef),
        jobId: job.id,
        owner,
        timing,
        signal,
      })
      if (!taken.acquired) {
        const name = vms.get(asRef<'VM'>(vmRef))?.name_label ?? vmRef
        throw new LeaseError(
          'JOB_RUNNING',
          `job "${job.name}" ${busy} (VM ${name} is leased by ${describeHolder(taken.holder)})`,
        )
      }
      held.push(taken.lease)
      // a lease lost during a failback cannot stop it halfway; the next renewal simply stops
      keeper.add(taken.lease, () => undefined)
    }
    return await fn()
  } finally {
    await keeper.releaseAll(() => ({}))
  }
}
