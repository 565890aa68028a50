/**
 * A replica's disks: each a `VDI.clone` of the base replica's disk (the delta lands on top) or a
 * new empty disk (the full copy lands in it), attached by a VBD copied from the source's. Every
 * object is registered on the cleanup stack as soon as it exists.
 */
import { AbortedError } from '../errors.js'
import type { CallOptions, XapiClient } from '../xapi/client.js'
import type { Ref, StringMap } from '../xapi/types.js'
import { cloneVdi, createVdi, destroyVdi, replaceVdiOtherConfig, resizeVdi, setVdiNameLabel } from '../xapi/vdi.js'
import { createVbd, destroyVbd } from '../xapi/vbd.js'
import type { CleanupStack } from './cleanup.js'
import { replicaOtherConfig, type ReplicaPolicy } from './replica-policy.js'
import type { DeltaDisk } from './vm-metadata.js'

export interface ReplicaDiskSpec {
  readonly disk: DeltaDisk
  /** the base replica's disk on the target SR to clone; absent: a new empty disk */
  readonly cloneOf?: Ref<'VDI'>
  /** that disk's size and name as read (a clone has both): the clone is not read back */
  readonly cloneOfRecord?: { readonly virtual_size: number; readonly name_label: string }
  /** replication keys for this disk (placeholder datetime) */
  readonly otherConfig: StringMap
}

export interface ReplicaDisksOptions {
  readonly target: XapiClient
  readonly sr: Ref<'SR'>
  readonly vm: Ref<'VM'>
  readonly disks: readonly ReplicaDiskSpec[]
  readonly policy: ReplicaPolicy
  readonly cleanup: CleanupStack
}

/** A replica disk and the `other_config` it was given. */
export interface ReplicaDisk {
  readonly ref: Ref<'VDI'>
  readonly otherConfig: StringMap
}

/** Creates the disks of `o.disks` in order and attaches each to `o.vm`; resolves to them in that order. */
export async function createReplicaDisks(o: ReplicaDisksOptions, opts: CallOptions): Promise<ReplicaDisk[]> {
  const vdis: ReplicaDisk[] = []
  for (const spec of o.disks) {
    const otherConfig = replicaOtherConfig(o.policy, spec.disk.vdi.other_config, spec.otherConfig)
    const vdi =
      spec.cloneOf === undefined
        ? await newDisk(o, spec, otherConfig, opts)
        : await clonedDisk(o, spec, spec.cloneOf, otherConfig, opts)
    const vbd = spec.disk.vbd
    const vbdRef = await createVbd(
      o.target,
      {
        VM: o.vm,
        VDI: vdi,
        userdevice: vbd.userdevice,
        bootable: vbd.bootable,
        mode: vbd.mode,
        type: vbd.type,
        unpluggable: vbd.unpluggable,
        other_config: vbd.other_config,
        qos_algorithm_type: vbd.qos_algorithm_type,
        qos_algorithm_params: vbd.qos_algorithm_params,
      },
      opts,
    )
    o.cleanup.defer(`replica VBD ${vbdRef}`, () => destroyVbd(o.target, vbdRef))
    vdis.push({ ref: vdi, otherConfig })
  }
  return vdis
}

async function clonedDisk(
  o: ReplicaDisksOptions,
  spec: ReplicaDiskSpec,
  base: Ref<'VDI'>,
  otherConfig: StringMap,
  opts: CallOptions,
): Promise<Ref<'VDI'>> {
  const { target } = o
  const source = spec.disk.vdi
  // The clone carries the previous replica's keys (this job's from the moment it exists); until it
  // has a VBD, a leftover sweep recognises it by them as a disk attached to nothing.
  const vdi = await cloneVdi(target, base, opts)
  o.cleanup.defer(`replica disk ${vdi}`, () => destroyVdi(target, vdi))
  if (opts.signal?.aborted === true) throw new AbortedError(`cloning disk ${base} aborted`)
  // One call replaces the whole map, built as a new disk's is: no stale key of the previous replica
  // (its datetime, its copy_of) survives, none is left half-written.
  await replaceVdiOtherConfig(target, vdi, otherConfig, opts)
  const current = spec.cloneOfRecord ?? (await target.getRecord('VDI', vdi, opts))
  if (current.virtual_size < source.virtual_size) await resizeVdi(target, vdi, source.virtual_size, opts)
  // the clone keeps the previous replica's disk name; the source disk may have been renamed since
  if (current.name_label !== source.name_label) await setVdiNameLabel(target, vdi, source.name_label, opts)
  return vdi
}

async function newDisk(
  o: ReplicaDisksOptions,
  spec: ReplicaDiskSpec,
  otherConfig: StringMap,
  opts: CallOptions,
): Promise<Ref<'VDI'>> {
  const { target } = o
  const source = spec.disk.vdi
  const vdi = await createVdi(
    target,
    {
      SR: o.sr,
      virtual_size: source.virtual_size,
      name_label: source.name_label,
      name_description: source.name_description,
      type: source.type,
      sharable: source.sharable,
      read_only: false,
      // the job's keys from the start: a disk never exists unmarked
      other_config: otherConfig,
      xenstore_data: source.xenstore_data,
      // sm_config is storage-private: never copied (XO does the same).
      sm_config: {},
      tags: source.tags,
    },
    opts,
  )
  o.cleanup.defer(`replica disk ${vdi}`, () => destroyVdi(target, vdi))
  return vdi
}
