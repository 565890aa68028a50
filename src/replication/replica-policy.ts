/**
 * XO's replica policy (reference `xo-replication-behaviour.md` §1–2), handed to the delta core
 * that assembles and finalises replicas without knowing any key or message itself.
 */
import type { ReplicaPolicy } from '../delta/replica-policy.js'
import {
  BLOCKED_START_OPERATIONS,
  IMPORTING_BLOCKED_MESSAGE,
  KEYS,
  LIVE_VM_RESET_KEYS,
  REPLICA_TAG,
  START_BLOCKED_MESSAGE,
  importingName,
} from './metadata.js'

export const REPLICA_POLICY: ReplicaPolicy = {
  importingName,
  blockedOperations: BLOCKED_START_OPERATIONS,
  importingReason: IMPORTING_BLOCKED_MESSAGE,
  protectedReason: START_BLOCKED_MESSAGE,
  tag: REPLICA_TAG,
  // Backup keys of the source records would leak onto the replica under other meanings.
  droppedKeys: [...LIVE_VM_RESET_KEYS, KEYS.sr, KEYS.baseDelta, KEYS.baseDeltaVdi],
}
