/**
 * Turning a fresh clone of a replica into an ordinary VM: start unblocked, the replica tag and
 * every replication key gone from the VM and its disks — so no pass, retention, listing or XO
 * ever takes it for a replica — and its VIFs on the chosen networks (or none).
 */
import {
  BLOCKED_START_OPERATIONS,
  KEYS,
  RECOVERY_KEYS,
  REPLICA_TAG,
  SOURCE_SETTING_KEYS,
  recordedHaSettings,
} from '../replication/metadata.js'
import type { CallOptions, XapiClient } from '../xapi/client.js'
import { listVmDisks } from '../xapi/vbd.js'
import { setVdiOtherConfig } from '../xapi/vdi.js'
import { createVif, destroyVif, vifCopyParams } from '../xapi/vif.js'
import { removeTag, setVmOtherConfig, unblockOperation } from '../xapi/vm.js'
import type { Ref } from '../xapi/types.js'
import type { NetworkChoice } from './network-remap.js'

const KNOWN_KEYS: ReadonlySet<string> = new Set(Object.values(KEYS))
// The namespace of the backup keys metadata.ts defines (`xo:backup:`): keys a later XO adds there
// (e.g. `xo:backup:includeNonNbdQcow2Fix` before we knew it) must go too.
const BACKUP_NAMESPACE = KEYS.datetime.slice(0, KEYS.datetime.lastIndexOf(':') + 1)

/** True for a key that marks an object as part of a replication chain. */
export function isReplicationKey(key: string): boolean {
  return KNOWN_KEYS.has(key) || key.startsWith(BACKUP_NAMESPACE)
}

/** `other_config` removals (`key: null`) for every replication key of `otherConfig`. */
export function replicationKeyRemovals(otherConfig: Readonly<Record<string, string>>): Record<string, null> {
  const out: Record<string, null> = {}
  for (const key of Object.keys(otherConfig)) if (isReplicationKey(key)) out[key] = null
  return out
}

/** Unblocks start, removes the replica tag and the replication keys of the VM and of each of its disks. */
export async function unmarkReplica(client: XapiClient, vm: Ref<'VM'>, options: CallOptions = {}): Promise<void> {
  for (const op of BLOCKED_START_OPERATIONS) await unblockOperation(client, vm, op, options)
  const record = await client.getRecord('VM', vm, options)
  if (record.tags.includes(REPLICA_TAG)) await removeTag(client, vm, REPLICA_TAG, options)
  await setVmOtherConfig(client, vm, replicationKeyRemovals(record.other_config), options)
  for (const disk of await listVmDisks(client, record.VBDs, options))
    await setVdiOtherConfig(client, disk.vdiRef, replicationKeyRemovals(disk.vdi.other_config), options)
}

/**
 * Gives a failover VM the HA settings its source had, which the pass recorded on the replica
 * (a replica itself has HA off: HA would boot it), and removes the record. Resolves to the
 * restart priority set ("" when HA stays off).
 */
export async function restoreHaSettings(client: XapiClient, vm: Ref<'VM'>, options: CallOptions = {}): Promise<string> {
  const record = await client.getRecord('VM', vm, options)
  const ha = recordedHaSettings(record.other_config)
  if (ha.ha_restart_priority !== '')
    await client.call('VM.set_ha_restart_priority', [vm, ha.ha_restart_priority], options)
  if (ha.ha_always_run) await client.call('VM.set_ha_always_run', [vm, true], options)
  const removals: Record<string, null> = {}
  for (const key of Object.values(SOURCE_SETTING_KEYS)) if (key in record.other_config) removals[key] = null
  await setVmOtherConfig(client, vm, removals, options)
  return ha.ha_restart_priority
}

/**
 * Records on a failover VM and its disks which replica (and replica disk, paired by userdevice)
 * it was made from: failback sends back only the blocks changed since, on top of that replica's
 * base. The keys are outside the replication namespace, so the VM stays an ordinary VM.
 */
export async function markFailoverOrigin(
  client: XapiClient,
  vm: Ref<'VM'>,
  replica: Ref<'VM'>,
  jobId: string,
  options: CallOptions = {},
): Promise<void> {
  const [record, origin] = await Promise.all([
    client.getRecord('VM', vm, options),
    client.getRecord('VM', replica, options),
  ])
  const originDisks = await listVmDisks(client, origin.VBDs, options)
  for (const disk of await listVmDisks(client, record.VBDs, options)) {
    const from = originDisks.find(d => d.vbd.userdevice === disk.vbd.userdevice)
    if (from !== undefined)
      await setVdiOtherConfig(client, disk.vdiRef, { [RECOVERY_KEYS.failoverReplicaVdi]: from.vdi.uuid }, options)
  }
  await setVmOtherConfig(
    client,
    vm,
    { [RECOVERY_KEYS.failoverReplica]: origin.uuid, [RECOVERY_KEYS.failoverJob]: jobId },
    options,
  )
}

/**
 * Puts the VM's VIFs where `choice` says: kept, removed, or moved (destroyed and re-created with
 * the same device, MAC and settings on the mapped network). Resolves to the number of VIFs left.
 */
export async function applyNetworks(
  client: XapiClient,
  vm: Ref<'VM'>,
  choice: NetworkChoice,
  remap: ReadonlyMap<string, string>,
  options: CallOptions = {},
): Promise<number> {
  const record = await client.getRecord('VM', vm, options)
  if (choice.kind === 'keep') return record.VIFs.length
  let left = 0
  for (const ref of record.VIFs) {
    if (choice.kind === 'none') {
      await destroyVif(client, ref, options)
      continue
    }
    left++
    const vif = await client.getRecord('VIF', ref, options)
    const to = remap.get(vif.network)
    if (to === undefined || to === vif.network) continue
    await destroyVif(client, ref, options)
    await createVif(client, vifCopyParams(vif, vm, to as Ref<'network'>), options)
  }
  return left
}
