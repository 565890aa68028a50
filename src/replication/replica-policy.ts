/**
 * XO's replica policy (reference `xo-replication-behaviour.md` §1–2), handed to the delta core
 * that assembles and finalises replicas without knowing any key or message itself.
 */
import type { ReplicaPolicy } from '../delta/replica-policy.js'
import {
  BLOCKED_START_OPERATIONS,
  KEYS,
  LEASE_KEY_PREFIX,
  LIVE_VM_RESET_KEYS,
  REPLICA_TAG,
  SOURCE_SETTING_KEYS,
  START_BLOCKED_MESSAGE,
  haSettingKeys,
  importingName,
} from './metadata.js'

export const REPLICA_POLICY: ReplicaPolicy = {
  importingName,
  blockedOperations: BLOCKED_START_OPERATIONS,
  // XO blocks start with "Importing…" while it assembles, then with the clone message: ours is
  // blocked with the clone message from the start (one call fewer); the `[Importing…]` name and
  // the placeholder datetime, which only completion replaces, mark an unfinished replica
  importingReason: START_BLOCKED_MESSAGE,
  protectedReason: START_BLOCKED_MESSAGE,
  tag: REPLICA_TAG,
  tagOnCreate: true,
  // Backup keys of the source records would leak onto the replica under other meanings; a
  // recorded HA setting is the source VM's own, written afresh (or not at all when HA is off).
  droppedKeys: [
    ...LIVE_VM_RESET_KEYS,
    KEYS.sr,
    KEYS.baseDelta,
    KEYS.baseDeltaVdi,
    ...Object.values(SOURCE_SETTING_KEYS),
  ],
  // the snapshot copied the source VM's lease entries (every job's); a replica holds no lease
  droppedKeyPrefixes: [LEASE_KEY_PREFIX],
  settingKeys: haSettingKeys,
}
