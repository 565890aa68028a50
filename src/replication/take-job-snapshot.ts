/**
 * The job's snapshot of a VM, as a pass takes it and as a seed takes it (so the next pass treats a
 * seed's snapshot as its own): a temporary name, the job keys on the snapshot and its disks, then
 * XO's snapshot name — a snapshot found by its keys is therefore always complete.
 */
import { isXapiError } from '../errors.js'
import type { CleanupStack } from '../delta/cleanup.js'
import type { PassNetworks } from '../delta/pass-networks.js'
import { readDeltaMetadata, type DeltaVmMetadata } from '../delta/vm-metadata.js'
import type { XapiClient } from '../xapi/client.js'
import type { Ref } from '../xapi/types.js'
import { replaceVdiOtherConfig } from '../xapi/vdi.js'
import { replaceVmOtherConfig, setVmIsATemplate, setVmNameLabel, snapshotVm } from '../xapi/vm.js'
import { destroyVmAndDisks } from './destroy.js'
import {
  LEASE_KEY_PREFIX,
  TEMP_SNAPSHOT_NAME,
  formatXapiDateTime,
  snapshotName,
  sourceSnapshotKeys,
  sourceSnapshotVdiKeys,
  type PassIdentity,
} from './metadata.js'

export interface TakeJobSnapshotOptions {
  readonly id: PassIdentity
  readonly jobName: string
  /** the live VM's name, for XO's snapshot name */
  readonly vmName: string
  /** the snapshot's datetime key */
  readonly at: Date
  /** the snapshot's removal is registered here as soon as it exists */
  readonly cleanup: CleanupStack
  /** the pass's networks: a network already read for another VM is not read again */
  readonly networks?: PassNetworks
  readonly signal?: AbortSignal
}

export interface JobSnapshot {
  readonly ref: Ref<'VM'>
  readonly name: string
  /** the datetime key written on the snapshot and its disks (XAPI format) */
  readonly datetime: string
  /** read after renaming, so it names the snapshot as it now is */
  readonly metadata: DeltaVmMetadata
}

/**
 * Snapshots `vmRef` on `source` and tags the snapshot and its disks for the job: one
 * `set_other_config` per object, the whole map built from the record read once (`VM.snapshot`
 * copies the VM's and disks' maps exactly; nothing else writes the new snapshot's).
 */
export async function takeJobSnapshot(
  source: XapiClient,
  vmRef: Ref<'VM'>,
  o: TakeJobSnapshotOptions,
): Promise<JobSnapshot> {
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  const datetime = formatXapiDateTime(o.at)
  const ref = await snapshotVm(source, vmRef, TEMP_SNAPSHOT_NAME, opts)
  o.cleanup.defer(`source snapshot ${ref}`, () => destroyVmAndDisks(source, ref))
  try {
    await setVmIsATemplate(source, ref, false, opts)
  } catch (error) {
    // XAPI refuses on some licences; the snapshot is still usable (XO ignores this too).
    if (!isXapiError(error, 'LICENCE_RESTRICTION')) throw error
  }
  const before = await readDeltaMetadata(source, ref, {
    ...opts,
    sourceVm: vmRef,
    ...(o.networks === undefined ? {} : { networks: o.networks }),
  })
  // The disks first: until the VM carries the keys, its temporary name marks it as debris, and
  // a sweep that destroys it takes its disks too.
  const disks = []
  for (const disk of before.disks) {
    const otherConfig = { ...disk.vdi.other_config, ...sourceSnapshotVdiKeys(o.id, datetime, disk.vdi.uuid) }
    await replaceVdiOtherConfig(source, disk.vdiRef, otherConfig, opts)
    disks.push({ ...disk, vdi: { ...disk.vdi, other_config: otherConfig } })
  }
  // the snapshot copied the live VM's lease entries (every job's): stale on a snapshot, dropped
  const inherited = Object.entries(before.vm.other_config).filter(([k]) => !k.startsWith(LEASE_KEY_PREFIX))
  const otherConfig = { ...Object.fromEntries(inherited), ...sourceSnapshotKeys(o.id, datetime) }
  await replaceVmOtherConfig(source, ref, otherConfig, opts)
  const name = snapshotName(o.jobName, o.vmName)
  await setVmNameLabel(source, ref, name, opts)
  // What was just written, without reading it back.
  const metadata: DeltaVmMetadata = {
    ...before,
    vm: { ...before.vm, name_label: name, other_config: otherConfig },
    disks,
  }
  return { ref, name, datetime, metadata }
}
