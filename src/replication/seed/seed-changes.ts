/**
 * What a seed writes: the exact metadata a completed era-B pass would have left on the replica
 * VM, the source snapshot and their disks. Only entries that differ from what is there become
 * changes, which makes a second seed a no-op.
 */
import {
  BLOCKED_START_OPERATIONS,
  KEYS,
  REPLICA_TAG,
  START_BLOCKED_MESSAGE,
  contentKeyOf,
  exportedKeys,
  formatXapiDateTime,
  isPlaceholderDatetime,
  parseXapiDateTime,
  replicaVdiKeys,
  replicaVmKeys,
  snapshotName,
  sourceSnapshotKeys,
  sourceSnapshotVdiKeys,
  type PassIdentity,
} from '../metadata.js'
import type { SeedSubject } from './seed-checks.js'
import { seedObject, type SeedObject, type SeedVm } from './seed-records.js'

type Strings = Readonly<Record<string, string>>

/** What to write on one object; every field present is a difference from what is there now. */
export interface SeedChange {
  readonly side: 'source' | 'target'
  readonly cls: 'VM' | 'VDI'
  readonly object: SeedObject
  /** `other_config` entries, in the order they are written */
  readonly otherConfig: Strings
  readonly nameLabel?: string
  readonly blockedOperations?: Strings
  readonly addTags?: readonly string[]
  /**
   * snapshots are templates for XAPI, and so is the XVA import of one: the flag is cleared on
   * both (on the source as XO does; the replica must be a VM for XO's listing and ours)
   */
  readonly clearIsATemplate?: true
  /** HA must never start a replica */
  readonly clearHa?: true
}

/**
 * The `xo:backup:datetime` of the seed: the one this job already wrote on the snapshot (a
 * second seed), else the snapshot's own time, else `now`.
 */
export function seedDatetime(snap: SeedVm, jobId: string, now: Date | undefined): string {
  const own = snap.other_config[KEYS.job] === jobId ? snap.other_config[KEYS.datetime] : undefined
  if (own !== undefined && !isPlaceholderDatetime(own)) return own
  const fromSnapshot = parseXapiDateTime(snap.snapshot_time)
  return formatXapiDateTime(
    fromSnapshot !== undefined && fromSnapshot.getTime() > 0 ? fromSnapshot : (now ?? new Date()),
  )
}

export interface SeedWrites {
  readonly identity: PassIdentity
  readonly datetime: string
  /** the replica's name */
  readonly name: string
  /** the job's name when it is known: the source snapshot is then named as a pass of it names it */
  readonly jobName: string | undefined
}

/** Entries of `wanted` that differ from `current`, in `wanted`'s order. */
function diff(current: Strings, wanted: Strings): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(wanted)) if (current[k] !== v) out[k] = v
  return out
}

const changesSomething = (c: SeedChange): boolean =>
  Object.keys(c.otherConfig).length > 0 ||
  c.nameLabel !== undefined ||
  c.blockedOperations !== undefined ||
  c.addTags !== undefined ||
  c.clearIsATemplate === true ||
  c.clearHa === true

/**
 * The changes, in the order they are written: target first and the VM's datetime last (it marks
 * the replica complete); the source's `exported` marker last of all, as a pass writes it only
 * once the copy exists.
 */
export function seedChanges(s: SeedSubject, w: SeedWrites): SeedChange[] {
  return [...targetDiskChanges(s, w), targetVmChange(s, w), ...sourceDiskChanges(s, w), snapshotChange(s, w)].filter(
    changesSomething,
  )
}

function targetDiskChanges(s: SeedSubject, w: SeedWrites): SeedChange[] {
  const srUuid = s.sr.record.uuid
  return s.pairs.map(p => {
    const src = s.srcDisks.find(d => d.ref === p.source.ref)!
    const tgt = s.tgtDisks.find(d => d.ref === p.target.ref)!
    const source = { vdiUuid: src.vdi.uuid, contentKey: contentKeyOf(src.vdi) }
    return {
      side: 'target',
      cls: 'VDI',
      object: p.target,
      otherConfig: diff(tgt.vdi.other_config, replicaVdiKeys(w.identity, srUuid, source, w.datetime)),
    }
  })
}

function targetVmChange(s: SeedSubject, w: SeedWrites): SeedChange {
  const tgt = s.target.record
  const keys = replicaVmKeys(w.identity, s.sr.record.uuid, s.snapshot.record.uuid, w.datetime)
  const { [KEYS.datetime]: datetime, ...others } = keys
  const blocked = Object.fromEntries(
    BLOCKED_START_OPERATIONS.filter(op => tgt.blocked_operations[op] !== START_BLOCKED_MESSAGE).map(op => [
      op,
      START_BLOCKED_MESSAGE,
    ]),
  )
  return {
    side: 'target',
    cls: 'VM',
    object: seedObject(s.target.ref, tgt),
    otherConfig: diff(tgt.other_config, {
      ...others,
      [KEYS.deltaChainLength]: exportedKeys(0)[KEYS.deltaChainLength]!,
      [KEYS.datetime]: datetime!,
    }),
    ...(tgt.name_label === w.name ? {} : { nameLabel: w.name }),
    ...(Object.keys(blocked).length === 0 ? {} : { blockedOperations: blocked }),
    ...(tgt.tags.includes(REPLICA_TAG) ? {} : { addTags: [REPLICA_TAG] }),
    ...(tgt.ha_restart_priority === '' && !tgt.ha_always_run ? {} : { clearHa: true as const }),
    ...(tgt.is_a_template ? { clearIsATemplate: true as const } : {}),
  }
}

function sourceDiskChanges(s: SeedSubject, w: SeedWrites): SeedChange[] {
  return s.srcDisks.map(d => ({
    side: 'source',
    cls: 'VDI',
    object: seedObject(d.ref, d.vdi),
    otherConfig: diff(d.vdi.other_config, {
      ...sourceSnapshotVdiKeys(w.identity, w.datetime, contentKeyOf(d.vdi)),
      ...exportedKeys(0),
    }),
  }))
}

function snapshotChange(s: SeedSubject, w: SeedWrites): SeedChange {
  const snap = s.snapshot.record
  const name = w.jobName === undefined ? undefined : snapshotName(w.jobName, s.vm.record.name_label)
  return {
    side: 'source',
    cls: 'VM',
    object: seedObject(s.snapshot.ref, snap),
    otherConfig: diff(snap.other_config, { ...sourceSnapshotKeys(w.identity, w.datetime), ...exportedKeys(0) }),
    ...(name === undefined || snap.name_label === name ? {} : { nameLabel: name }),
    ...(snap.is_a_template ? { clearIsATemplate: true as const } : {}),
  }
}
