/**
 * What a replica looks like besides the copied records — its names, protection, tag and the
 * `other_config` keys that must not be copied — decided by the caller's replication scheme
 * (`replication/replica-policy.ts` builds XO's) and applied here without knowing its keys.
 */
import type { StringMap } from '../xapi/types.js'
import type { SourceVmSettings } from './vm-metadata.js'

export interface ReplicaPolicy {
  /** the VM's name while it is assembled, from its final name */
  readonly importingName: (name: string) => string
  /** operations blocked on every replica, from creation on */
  readonly blockedOperations: readonly string[]
  /** the reason stored on those operations while the replica is assembled */
  readonly importingReason: string
  /** the reason stored on them once the replica is complete */
  readonly protectedReason: string
  /** the tag of a replica: never copied from the source records; added at creation or on completion */
  readonly tag: string
  /** true: the tag goes in the `VM.create` record (one call fewer); else `finaliseReplica` adds it */
  readonly tagOnCreate?: boolean
  /** `other_config` keys of the source records never copied to the replica */
  readonly droppedKeys: readonly string[]
  /** and every key starting with one of these (keys named after a job, such as leases) */
  readonly droppedKeyPrefixes?: readonly string[]
  /**
   * Keys recording the source VM's settings the replica is made without (HA: it must never boot
   * a replica), so that whoever turns a replica into a VM again can restore them.
   */
  readonly settingKeys?: (vm: SourceVmSettings) => StringMap
}

/** `source`'s `other_config` without the policy's dropped keys, overlaid with `keys`. */
export function replicaOtherConfig(policy: ReplicaPolicy, source: StringMap, keys: StringMap): Record<string, string> {
  const out: Record<string, string> = {}
  const prefixes = policy.droppedKeyPrefixes ?? []
  for (const [k, v] of Object.entries(source))
    if (!policy.droppedKeys.includes(k) && !prefixes.some(p => k.startsWith(p))) out[k] = v
  return { ...out, ...keys }
}

/** `blocked_operations` with each of the policy's operations blocked for `reason` (the whole map). */
export function blockedMap(policy: ReplicaPolicy, reason: string): Record<string, string> {
  return Object.fromEntries(policy.blockedOperations.map(op => [op, reason]))
}
