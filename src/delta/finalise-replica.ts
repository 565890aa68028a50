/**
 * The last step of a replica: its final name, its protection (start blocked with the policy's
 * protected reason, the policy's tag) and the caller's completion keys, the VM's written last.
 * Each map is written whole in one call, built from the record read here (or, for a disk, from
 * the map the assembly wrote): nothing but this pass writes them while the replica is assembled.
 */
import type { CallOptions, XapiClient } from '../xapi/client.js'
import type { Ref, StringMap } from '../xapi/types.js'
import { replaceVdiOtherConfig } from '../xapi/vdi.js'
import { addTag, replaceVmOtherConfig, setVmBlockedOperations, setVmNameLabel } from '../xapi/vm.js'
import { blockedMap, type ReplicaPolicy } from './replica-policy.js'

export interface FinaliseDisk {
  readonly ref: Ref<'VDI'>
  readonly name: string
  /** the disk's `other_config` as the assembly wrote it; absent: read from the disk */
  readonly otherConfig?: StringMap
}

export interface FinaliseOptions {
  readonly target: XapiClient
  readonly vm: Ref<'VM'>
  readonly name: string
  readonly vdis: readonly FinaliseDisk[]
  readonly policy: ReplicaPolicy
  /** `other_config` entries written on every disk, then on the VM last: they mark the replica complete */
  readonly completeKeys: StringMap
  /** further `other_config` entries of the VM only, written with the completion keys */
  readonly vmKeys?: StringMap
  readonly signal?: AbortSignal
}

/**
 * Protects the replica and writes the completion keys on its disks, then on the VM — the VM's
 * last, since readers treat the VM's keys as "complete". Resolves to the replica VM's uuid.
 */
export async function finaliseReplica(o: FinaliseOptions): Promise<{ uuid: string }> {
  const { target, vm, policy } = o
  const opts: CallOptions = o.signal === undefined ? {} : { signal: o.signal }
  const record = await target.getRecord('VM', vm, opts)
  await setVmNameLabel(target, vm, o.name, opts)
  const blocked = blockedMap(policy, policy.protectedReason)
  // blocked so since its creation when the policy's reasons are one (XO's replicas: one call fewer)
  if (!sameMap(record.blocked_operations, blocked)) await setVmBlockedOperations(target, vm, blocked, opts)
  if (!record.tags.includes(policy.tag)) await addTag(target, vm, policy.tag, opts)
  for (const vdi of o.vdis) {
    const current = vdi.otherConfig ?? (await target.getRecord('VDI', vdi.ref, opts)).other_config
    await replaceVdiOtherConfig(target, vdi.ref, { ...current, ...o.completeKeys }, opts)
  }
  await replaceVmOtherConfig(target, vm, { ...record.other_config, ...o.vmKeys, ...o.completeKeys }, opts)
  return { uuid: record.uuid }
}

/** Whether two string maps hold the same entries. */
function sameMap(a: StringMap, b: StringMap): boolean {
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every(k => a[k] === b[k])
}
