/**
 * The last step of a replica: its final name, its protection (start blocked with the policy's
 * protected reason, the policy's tag) and the caller's completion keys, the VM's written last.
 */
import type { CallOptions, XapiClient } from '../xapi/client.js'
import type { Ref, StringMap } from '../xapi/types.js'
import { setVdiOtherConfig } from '../xapi/vdi.js'
import { addTag, blockOperation, setVmNameLabel, setVmOtherConfig } from '../xapi/vm.js'
import type { ReplicaPolicy } from './replica-policy.js'

export interface FinaliseOptions {
  readonly target: XapiClient
  readonly vm: Ref<'VM'>
  readonly name: string
  readonly vdis: readonly { readonly ref: Ref<'VDI'>; readonly name: string }[]
  readonly policy: ReplicaPolicy
  /** `other_config` entries written on every disk, then on the VM last: they mark the replica complete */
  readonly completeKeys: StringMap
  readonly signal?: AbortSignal
}

/**
 * Protects the replica and writes the completion keys on its disks, then on the VM — the VM's
 * last, since readers treat the VM's keys as "complete".
 */
export async function finaliseReplica(o: FinaliseOptions): Promise<void> {
  const { target, vm, policy } = o
  const opts: CallOptions = o.signal === undefined ? {} : { signal: o.signal }
  await setVmNameLabel(target, vm, o.name, opts)
  for (const op of policy.blockedOperations) await blockOperation(target, vm, op, policy.protectedReason, opts)
  const record = await target.getRecord('VM', vm, opts)
  if (!record.tags.includes(policy.tag)) await addTag(target, vm, policy.tag, opts)
  for (const vdi of o.vdis) await setVdiOtherConfig(target, vdi.ref, o.completeKeys, opts)
  await setVmOtherConfig(target, vm, o.completeKeys, opts)
}
