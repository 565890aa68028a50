/**
 * A VM lease in XAPI held by "another controller", as a run on another machine holds it while it
 * replicates the VM (`src/replication/vm-lease.ts`): a live entry written straight to the source
 * VM's `other_config`.
 */
import { leaseKeyPrefix } from '../../src/replication/metadata.js'
import type { LeaseRecord } from '../../src/replication/vm-lease.js'
import type { XapiClient } from '../../src/xapi/client.js'
import type { Ref } from '../../src/xapi/types.js'

export const OTHER_CONTROLLER = { host: 'controller-elsewhere', pid: 4242, run: 'run-held-by-the-test' } as const

/** Writes entry `n` of the job's lease on the VM; expires `ttlMs` from now (negative: already expired). */
export async function holdVmLease(
  client: XapiClient,
  vmUuid: string,
  jobId: string,
  options: { ttlMs?: number; n?: number; owner?: Pick<LeaseRecord, 'host' | 'pid' | 'run' | 'pids'> } = {},
): Promise<LeaseRecord> {
  const vmRef = await client.getByUuid('VM', vmUuid)
  const record: LeaseRecord = {
    ...(options.owner ?? OTHER_CONTROLLER),
    expires: new Date(Date.now() + (options.ttlMs ?? 600_000)).toISOString(),
  }
  await client.call('VM.add_to_other_config', [
    vmRef,
    `${leaseKeyPrefix(jobId)}${options.n ?? 0}`,
    JSON.stringify(record),
  ])
  return record
}

/** The job's lease entries on the VM, key → parsed value. */
export async function vmLeaseEntries(
  client: XapiClient,
  vmRef: Ref<'VM'>,
  jobId: string,
): Promise<Map<string, LeaseRecord>> {
  const oc = await client.call<Record<string, string>>('VM.get_other_config', [vmRef])
  const prefix = leaseKeyPrefix(jobId)
  return new Map(
    Object.entries(oc)
      .filter(([key]) => key.startsWith(prefix))
      .map(([key, value]) => [key, JSON.parse(value) as LeaseRecord]),
  )
}
