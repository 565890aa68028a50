/** Target VM records for the recovery unit tests: replicas of job "nightly" (job-1) on SR "Replica A". */
import type { ReplicaVmFields } from '../../src/recovery/job-replicas.js'
import { KEYS, START_BLOCKED_MESSAGE } from '../../src/replication/metadata.js'

export const job = { id: 'job-1', name: 'nightly', vms: { uuids: ['vm-a', 'vm-b', 'vm-c'], tags: [], all: false } }
export const now = new Date(Date.UTC(2026, 7, 21, 14, 0, 0))
const blocked = { start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE }

/** A target VM record; a replica of `vmUuid` when `datetime` is given. */
export function replica(
  uuid: string,
  vmName: string,
  vmUuid: string,
  datetime: string,
  over: Partial<ReplicaVmFields> & { keys?: Record<string, string> } = {},
): ReplicaVmFields {
  const { keys, ...fields } = over
  return {
    uuid,
    name_label: `${vmName} - nightly - (${datetime.replaceAll(':', '')})`,
    power_state: 'Halted',
    is_a_snapshot: false,
    is_a_template: false,
    other_config: {
      [KEYS.job]: 'job-1',
      [KEYS.schedule]: 'sch-1',
      [KEYS.vm]: vmUuid,
      [KEYS.sr]: 'sr-1',
      [KEYS.datetime]: datetime,
      ...keys,
    },
    blocked_operations: blocked,
    order: 0,
    start_delay: 0,
    ...fields,
  }
}

export const srs = new Map([['OpaqueRef:sr', { uuid: 'sr-1', name_label: 'Replica A' }]])
