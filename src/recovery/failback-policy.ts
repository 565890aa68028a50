/**
 * How the delta core assembles the failed-back VM on the source pool: a production VM, not a
 * replica. Start is blocked only while its disks are written (nobody boots a half-made VM), no
 * replica tag, and none of the replication or failover keys its records carry is copied.
 */
import type { ReplicaPolicy } from '../delta/replica-policy.js'
import {
  BLOCKED_START_OPERATIONS,
  KEYS,
  LIVE_VM_RESET_KEYS,
  RECOVERY_KEYS,
  REPLICA_TAG,
} from '../replication/metadata.js'
import { isReplicationKey } from './make-runnable.js'

/** The reason on `start` while a failback writes the VM's disks. */
export const FAILBACK_IMPORTING_REASON = 'Failback: disks are being written, do not start.'

/** The reason left on an original VM whose in-place failback was interrupted mid-write. */
export const FAILBACK_INTERRUPTED_REASON =
  'Failback into this VM was interrupted: its disks are partly written. Run xen-cr failback --in-place again.'

/** Every key a failed-back VM must not carry: it would make passes or failback misread it. */
export const FAILBACK_DROPPED_KEYS: readonly string[] = [
  ...LIVE_VM_RESET_KEYS,
  KEYS.sr,
  KEYS.baseDelta,
  KEYS.baseDeltaVdi,
  ...Object.values(RECOVERY_KEYS),
]

/** `other_config` removals (`key: null`) for every key of `otherConfig` a failed-back VM or disk must not carry. */
export function droppedKeyRemovals(otherConfig: Readonly<Record<string, string>>): Record<string, null> {
  const out: Record<string, null> = {}
  for (const key of Object.keys(otherConfig))
    if (isReplicationKey(key) || FAILBACK_DROPPED_KEYS.includes(key)) out[key] = null
  return out
}

export const FAILBACK_POLICY: ReplicaPolicy = {
  importingName: name => `[Failback…] ${name}`,
  blockedOperations: BLOCKED_START_OPERATIONS,
  importingReason: FAILBACK_IMPORTING_REASON,
  // never applied: a failed-back VM is not finalised as a replica
  protectedReason: FAILBACK_IMPORTING_REASON,
  // filtered out of the copied tags, never added
  tag: REPLICA_TAG,
  droppedKeys: FAILBACK_DROPPED_KEYS,
}

/**
 * The job's network map turned around (target network uuid → source network uuid), so the VIFs
 * go back where the pass took them from. A target network two source networks were mapped to
 * has no single way back: it is left out, and the usual matching (uuid, VLAN and name) decides.
 */
export function reverseNetworkMap(map: Readonly<Record<string, string>>): Record<string, string> {
  const back = new Map<string, string | null>()
  for (const [from, to] of Object.entries(map)) back.set(to, back.has(to) ? null : from)
  const out: Record<string, string> = {}
  for (const [to, from] of back) if (from !== null) out[to] = from
  return out
}
