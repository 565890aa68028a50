/**
 * Deciding what a seed writes, as a pure function of the records of both pools: every check of
 * the request (refusals are `ValidationError`s, nothing is written) and the exact metadata a
 * completed era-B pass would have left on the source snapshot, the replica VM and their disks.
 * Only the entries that differ from what is there become changes, which makes a second seed a
 * no-op. Applying the changes is `apply-seed.ts`.
 */
import { ValidationError } from '../../errors.js'
import { isUuid } from '../../jobs/job-document.js'
import type { VmSelection } from '../../jobs/types.js'
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
  replicaName,
  replicaVdiKeys,
  replicaVmKeys,
  snapshotName,
  sourceSnapshotKeys,
  sourceSnapshotVdiKeys,
  type PassIdentity,
} from '../metadata.js'

type Strings = Readonly<Record<string, string>>

/** The fields of a VM record a seed reads (XAPI's `VmRecord` fits). */
export interface SeedVm {
  readonly uuid: string
  readonly name_label: string
  readonly power_state: string
  readonly is_a_snapshot: boolean
  readonly is_a_template: boolean
  readonly is_control_domain: boolean
  readonly snapshot_of: string
  readonly snapshot_time: string
  readonly other_config: Strings
  readonly blocked_operations: Strings
  readonly tags: readonly string[]
  readonly VBDs: readonly string[]
  readonly ha_always_run: boolean
  readonly ha_restart_priority: string
}

export interface SeedVbd {
  readonly VM: string
  readonly VDI: string
  readonly type: string
  readonly userdevice: string
}

export interface SeedVdi {
  readonly uuid: string
  readonly name_label: string
  readonly SR: string
  readonly virtual_size: number
  readonly other_config: Strings
  readonly VBDs: readonly string[]
}

export interface SeedSr {
  readonly uuid: string
  readonly name_label: string
}

/** Records of one pool keyed by ref, as `get_all_records` returns them. */
export interface SeedRecords {
  readonly vms: ReadonlyMap<string, SeedVm>
  readonly vbds: ReadonlyMap<string, SeedVbd>
  readonly vdis: ReadonlyMap<string, SeedVdi>
  readonly srs: ReadonlyMap<string, SeedSr>
}

export interface SeedRequest {
  /**
   * The job. `name`, `srs` and `vms` are known when it is in the job store; a seed for a job
   * defined elsewhere (Xen Orchestra, the drop-in) has only its id and skips those checks.
   */
  readonly job: {
    readonly id: string
    readonly name?: string
    readonly srs?: readonly string[]
    readonly vms?: VmSelection
  }
  readonly scheduleId: string
  readonly snapshotUuid: string
  readonly targetVmUuid: string
}

export interface SeedObject {
  readonly ref: string
  readonly uuid: string
  readonly name: string
}

export interface SeedDiskPair {
  readonly userdevice: string
  readonly virtualSize: number
  readonly source: SeedObject
  readonly target: SeedObject
}

/** What to write on one object; every field present is a difference from what is there now. */
export interface SeedChange {
  readonly side: 'source' | 'target'
  readonly cls: 'VM' | 'VDI'
  readonly object: SeedObject
  /** `other_config` entries, in the order they are written */
  readonly otherConfig: Readonly<Record<string, string>>
  readonly nameLabel?: string
  readonly blockedOperations?: Readonly<Record<string, string>>
  readonly addTags?: readonly string[]
  /** snapshots are templates for XAPI; a pass clears the flag as XO does */
  readonly clearIsATemplate?: true
  /** HA must never start a replica */
  readonly clearHa?: true
}

export interface SeedWarning {
  readonly code: 'SEED_JOB_NOT_IN_STORE'
  readonly message: string
}

export interface SeedPlan {
  readonly identity: PassIdentity
  /** `xo:backup:datetime` written on both sides */
  readonly datetime: string
  readonly snapshot: SeedObject
  readonly sourceVm: SeedObject
  readonly targetVm: SeedObject
  readonly sr: SeedObject
  readonly replicaName: string
  readonly pairs: readonly SeedDiskPair[]
  /** empty when the seed is already in place */
  readonly changes: readonly SeedChange[]
  readonly warnings: readonly SeedWarning[]
}

/** Stable codes of every seed refusal (exit 5). */
export type SeedRefusalCode =
  | 'SEED_ID_INVALID'
  | 'SEED_SNAPSHOT_NOT_FOUND'
  | 'SEED_NOT_A_SNAPSHOT'
  | 'SEED_SOURCE_VM_GONE'
  | 'SEED_VM_NOT_IN_JOB'
  | 'SEED_TARGET_NOT_FOUND'
  | 'SEED_TARGET_NOT_A_VM'
  | 'SEED_TARGET_NOT_HALTED'
  | 'SEED_TARGET_IS_SOURCE'
  | 'SEED_NO_DISKS'
  | 'SEED_DISKS_MISMATCH'
  | 'SEED_DISKS_ON_SEVERAL_SRS'
  | 'SEED_SR_NOT_IN_JOB'
  | 'SEED_SNAPSHOT_CLAIMED'
  | 'SEED_TARGET_CLAIMED'
  | 'SEED_ALREADY_REPLICATED'
  | 'SEED_CONTENT_MISMATCH'
  | 'SEED_MANIFEST_INVALID'
  | 'SEED_FILE_MISMATCH'
  | 'SEED_VM_NOT_FOUND'
  | 'SEED_OUT_NOT_EMPTY'

/** A seed refused before anything was written. */
export class SeedRefusal extends ValidationError {
  constructor(code: SeedRefusalCode, message: string) {
    super(code, message)
  }
}

/** Refuses ids that are not uuids, before any pool is contacted. */
export function checkSeedIds(ids: {
  readonly snapshot: string
  readonly targetVm: string
  readonly job?: string
  readonly schedule?: string
}): void {
  const named = [
    ['snapshot', ids.snapshot],
    ['target VM', ids.targetVm],
    ['job id', ids.job],
    ['schedule id', ids.schedule],
  ] as const
  for (const [what, value] of named) {
    if (value !== undefined && !isUuid(value))
      throw new SeedRefusal(
        'SEED_ID_INVALID',
        `${what} "${value}" is not a uuid (8-4-4-4-12 hex digits); copy it from xe vm-list or xen-cr job show`,
      )
  }
}

interface Disk {
  readonly ref: string
  readonly vdi: SeedVdi
  readonly userdevice: string
}

function disksOf(vm: SeedVm, pool: SeedRecords): Disk[] {
  const out: Disk[] = []
  for (const vbdRef of vm.VBDs) {
    const vbd = pool.vbds.get(vbdRef)
    if (vbd === undefined || vbd.type !== 'Disk') continue
    const vdi = pool.vdis.get(vbd.VDI)
    if (vdi !== undefined) out.push({ ref: vbd.VDI, vdi, userdevice: vbd.userdevice })
  }
  return out.sort((a, b) => Number(a.userdevice) - Number(b.userdevice))
}

function findByUuid<T extends { readonly uuid: string }>(
  map: ReadonlyMap<string, T>,
  uuid: string,
): [string, T] | undefined {
  const wanted = uuid.toLowerCase()
  for (const entry of map) if (entry[1].uuid.toLowerCase() === wanted) return entry
  return undefined
}

const obj = (ref: string, r: { readonly uuid: string; readonly name_label: string }): SeedObject => ({
  ref,
  uuid: r.uuid,
  name: r.name_label,
})

/** Entries of `wanted` that differ from `current`, in `wanted`'s order. */
function diff(current: Strings, wanted: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(wanted)) if (current[k] !== v) out[k] = v
  return out
}

/** `vm` is selected by the job's uuids, tags or "all" (replicas are never selected by tag or all). */
function selects(vms: VmSelection, vm: SeedVm): boolean {
  if (vms.uuids.some(u => u.toLowerCase() === vm.uuid.toLowerCase())) return true
  if (vm.tags.includes(REPLICA_TAG)) return false
  return vms.all || vm.tags.some(t => vms.tags.includes(t))
}

/** A key this request would write, already set to something else. */
function conflicting(oc: Strings, expected: Readonly<Record<string, string>>): string | undefined {
  for (const [k, v] of Object.entries(expected)) {
    const current = oc[k]
    if (current !== undefined && current !== v) return `${k}=${current}`
  }
  return undefined
}

/**
 * Checks a seed request against both pools and computes what to write. `samePool` says that
 * `source` and `target` are the records of one pool. `now` is used only when the snapshot has
 * no usable `snapshot_time`.
 * @throws SeedRefusal with a `SEED_*` code
 */
export function planSeed(
  request: SeedRequest,
  source: SeedRecords,
  target: SeedRecords,
  options: { readonly samePool: boolean; readonly now?: Date },
): SeedPlan {
  checkSeedIds({
    snapshot: request.snapshotUuid,
    targetVm: request.targetVmUuid,
    job: request.job.id,
    schedule: request.scheduleId,
  })
  const { job } = request
  const jobLabel = job.name === undefined ? `job ${job.id}` : `job ${job.name}`
  const warnings: SeedWarning[] = []

  // --- the source snapshot and the VM it is a snapshot of
  const snapEntry = findByUuid(source.vms, request.snapshotUuid)
  if (snapEntry === undefined)
    throw new SeedRefusal(
      'SEED_SNAPSHOT_NOT_FOUND',
      `snapshot ${request.snapshotUuid} is not on the source pool; check the uuid (xe snapshot-list) and the source pool`,
    )
  const [snapRef, snap] = snapEntry
  if (!snap.is_a_snapshot)
    throw new SeedRefusal(
      'SEED_NOT_A_SNAPSHOT',
      `${snap.uuid} ("${snap.name_label}") is not a snapshot; give the uuid of the snapshot you exported`,
    )
  const vm = source.vms.get(snap.snapshot_of)
  if (vm === undefined) {
    throw new SeedRefusal(
      'SEED_SOURCE_VM_GONE',
      `snapshot ${snap.uuid} ("${snap.name_label}") belongs to a VM that no longer exists; seed a snapshot of a live VM`,
    )
  }
  if (job.vms !== undefined && !selects(job.vms, vm)) {
    throw new SeedRefusal(
      'SEED_VM_NOT_IN_JOB',
      `snapshot ${snap.uuid} is of VM ${vm.name_label} (${vm.uuid}), which ${jobLabel} does not replicate; seed a snapshot of one of its VMs`,
    )
  }
  const identity: PassIdentity = { jobId: job.id, scheduleId: request.scheduleId, vmUuid: vm.uuid }

  // --- the target VM
  const tgtEntry = findByUuid(target.vms, request.targetVmUuid)
  if (tgtEntry === undefined)
    throw new SeedRefusal(
      'SEED_TARGET_NOT_FOUND',
      `VM ${request.targetVmUuid} is not on the target pool; check the uuid (xe vm-list) and the target pool`,
    )
  const [tgtRef, tgt] = tgtEntry
  if (tgt.is_a_snapshot || tgt.is_a_template || tgt.is_control_domain) {
    const kind = tgt.is_a_snapshot ? 'a snapshot' : tgt.is_control_domain ? 'a control domain' : 'a template'
    throw new SeedRefusal(
      'SEED_TARGET_NOT_A_VM',
      `target ${tgt.uuid} ("${tgt.name_label}") is ${kind}; give the uuid of the VM you imported`,
    )
  }
  if (options.samePool && tgtRef === snap.snapshot_of) {
    throw new SeedRefusal(
      'SEED_TARGET_IS_SOURCE',
      `target VM ${tgt.uuid} is the source VM itself; give the uuid of the imported copy`,
    )
  }
  if (tgt.power_state !== 'Halted') {
    throw new SeedRefusal(
      'SEED_TARGET_NOT_HALTED',
      `target VM ${tgt.name_label} (${tgt.uuid}) is ${tgt.power_state}; a seed must never have run since the import — shut it down only if you are sure it did not write, or import again`,
    )
  }

  // --- disks, paired by userdevice
  const srcDisks = disksOf(snap, source)
  const tgtDisks = disksOf(tgt, target)
  if (srcDisks.length === 0)
    throw new SeedRefusal('SEED_NO_DISKS', `snapshot ${snap.uuid} has no disks; nothing to seed`)
  const describe = (disks: Disk[]): string =>
    disks.map(d => `${d.userdevice}:${d.vdi.virtual_size}`).join(' ') || 'none'
  const sameSlots =
    srcDisks.length === tgtDisks.length && srcDisks.every((d, i) => tgtDisks[i]?.userdevice === d.userdevice)
  if (!sameSlots) {
    throw new SeedRefusal(
      'SEED_DISKS_MISMATCH',
      `disks differ: snapshot ${snap.uuid} has [${describe(srcDisks)}], target VM ${tgt.uuid} has [${describe(tgtDisks)}] (userdevice:bytes); import every disk of the snapshot`,
    )
  }
  const pairs: SeedDiskPair[] = []
  for (const [i, s] of srcDisks.entries()) {
    const t = tgtDisks[i]!
    if (s.vdi.virtual_size !== t.vdi.virtual_size) {
      throw new SeedRefusal(
        'SEED_DISKS_MISMATCH',
        `disk ${s.userdevice} differs in size: snapshot disk ${s.vdi.uuid} is ${s.vdi.virtual_size} bytes, target disk ${t.vdi.uuid} is ${t.vdi.virtual_size}; import the snapshot's disks unchanged`,
      )
    }
    pairs.push({
      userdevice: s.userdevice,
      virtualSize: s.vdi.virtual_size,
      source: obj(s.ref, s.vdi),
      target: obj(t.ref, t.vdi),
    })
  }

  // --- the target SR
  const srRefs = [...new Set(tgtDisks.map(d => d.vdi.SR))]
  if (srRefs.length !== 1) {
    const names = srRefs.map(r => target.srs.get(r)?.uuid ?? r).join(', ')
    throw new SeedRefusal(
      'SEED_DISKS_ON_SEVERAL_SRS',
      `the disks of target VM ${tgt.uuid} are on several SRs (${names}); a replica lives on one SR — move them to one of the job's SRs`,
    )
  }
  const srRef = srRefs[0]!
  const sr = target.srs.get(srRef)
  if (sr === undefined)
    throw new SeedRefusal('SEED_SR_NOT_IN_JOB', `the SR of target VM ${tgt.uuid}'s disks is not on the target pool`)
  if (job.srs === undefined) {
    warnings.push({
      code: 'SEED_JOB_NOT_IN_STORE',
      message: `job ${job.id} is not in the job store: its VMs and SRs were not checked; create it with xen-cr job create --id ${job.id} before the first run`,
    })
  } else if (!job.srs.some(u => u.toLowerCase() === sr.uuid.toLowerCase())) {
    throw new SeedRefusal(
      'SEED_SR_NOT_IN_JOB',
      `target disks are on SR ${sr.name_label} (${sr.uuid}), which is not a target of ${jobLabel} (${job.srs.join(', ') || 'none'}); import on one of its SRs`,
    )
  }

  // --- claims: nothing may already belong to another job, snapshot or copy
  const ownKeys = { [KEYS.job]: job.id, [KEYS.schedule]: request.scheduleId }
  const snapConflict =
    conflicting(snap.other_config, ownKeys) ??
    srcDisks.map(d => conflicting(d.vdi.other_config, ownKeys)).find(c => c !== undefined)
  if (snapConflict !== undefined) {
    throw new SeedRefusal(
      'SEED_SNAPSHOT_CLAIMED',
      `snapshot ${snap.uuid} already belongs to another job or schedule (${snapConflict}); take a new snapshot for this job`,
    )
  }
  const tgtConflict = conflicting(tgt.other_config, { ...ownKeys, [KEYS.copyOf]: snap.uuid })
  if (tgtConflict !== undefined) {
    throw new SeedRefusal(
      'SEED_TARGET_CLAIMED',
      `target VM ${tgt.uuid} is already a copy for something else (${tgtConflict}); import a fresh copy`,
    )
  }
  for (const p of pairs) {
    const t = tgtDisks.find(d => d.ref === p.target.ref)!
    const c = conflicting(t.vdi.other_config, { ...ownKeys, [KEYS.copyOf]: p.source.uuid })
    if (c !== undefined)
      throw new SeedRefusal(
        'SEED_TARGET_CLAIMED',
        `target disk ${p.target.uuid} is already a copy of something else (${c}); import a fresh copy`,
      )
    const others = t.vdi.VBDs.map(v => target.vbds.get(v)?.VM).filter(v => v !== undefined && v !== tgtRef)
    if (others.length > 0) {
      const names = others.map(r => target.vms.get(r!)?.uuid ?? r).join(', ')
      throw new SeedRefusal(
        'SEED_TARGET_CLAIMED',
        `target disk ${p.target.uuid} is also attached to VM ${names}; a replica's disks must be its own`,
      )
    }
  }
  for (const [ref, other] of target.vms) {
    if (ref === tgtRef) continue
    const oc = other.other_config
    if (oc[KEYS.copyOf] === snap.uuid && oc[KEYS.job] === job.id && oc[KEYS.sr] === sr.uuid) {
      throw new SeedRefusal(
        'SEED_ALREADY_REPLICATED',
        `VM ${other.name_label} (${other.uuid}) on SR ${sr.name_label} is already the copy of snapshot ${snap.uuid} for ${jobLabel}; the job needs no seed there`,
      )
    }
  }

  // --- what a completed pass would have written
  const own = snap.other_config[KEYS.job] === job.id ? snap.other_config[KEYS.datetime] : undefined
  const fromSnapshot = parseXapiDateTime(snap.snapshot_time)
  const datetime =
    own !== undefined && !isPlaceholderDatetime(own)
      ? own
      : formatXapiDateTime(
          fromSnapshot !== undefined && fromSnapshot.getTime() > 0 ? fromSnapshot : (options.now ?? new Date()),
        )
  const date = parseXapiDateTime(datetime) ?? new Date(0)
  const name = replicaName(vm.name_label, job.name ?? job.id, date)
  const exported = exportedKeys(0)
  const changes: SeedChange[] = []
  const push = (change: SeedChange): void => {
    const { otherConfig, nameLabel, blockedOperations, addTags, clearIsATemplate, clearHa } = change
    if (
      Object.keys(otherConfig).length > 0 ||
      nameLabel !== undefined ||
      blockedOperations !== undefined ||
      addTags !== undefined ||
      clearIsATemplate ||
      clearHa
    )
      changes.push(change)
  }

  // Target first and the VM's datetime last (it marks the replica complete); the source's
  // `exported` marker last of all, as a pass writes it only once the copy exists.
  for (const p of pairs) {
    const s = srcDisks.find(d => d.ref === p.source.ref)!
    const t = tgtDisks.find(d => d.ref === p.target.ref)!
    push({
      side: 'target',
      cls: 'VDI',
      object: p.target,
      otherConfig: diff(
        t.vdi.other_config,
        replicaVdiKeys(identity, sr.uuid, { vdiUuid: s.vdi.uuid, contentKey: contentKeyOf(s.vdi) }, datetime),
      ),
    })
  }
  const { [KEYS.datetime]: tgtDatetime, ...tgtKeys } = replicaVmKeys(identity, sr.uuid, snap.uuid, datetime)
  const blocked = Object.fromEntries(
    BLOCKED_START_OPERATIONS.filter(op => tgt.blocked_operations[op] !== START_BLOCKED_MESSAGE).map(op => [
      op,
      START_BLOCKED_MESSAGE,
    ]),
  )
  push({
    side: 'target',
    cls: 'VM',
    object: obj(tgtRef, tgt),
    otherConfig: diff(tgt.other_config, {
      ...tgtKeys,
      [KEYS.deltaChainLength]: exported[KEYS.deltaChainLength]!,
      [KEYS.datetime]: tgtDatetime!,
    }),
    ...(tgt.name_label === name ? {} : { nameLabel: name }),
    ...(Object.keys(blocked).length === 0 ? {} : { blockedOperations: blocked }),
    ...(tgt.tags.includes(REPLICA_TAG) ? {} : { addTags: [REPLICA_TAG] }),
    ...(tgt.ha_restart_priority === '' && !tgt.ha_always_run ? {} : { clearHa: true as const }),
  })
  for (const s of srcDisks) {
    push({
      side: 'source',
      cls: 'VDI',
      object: obj(s.ref, s.vdi),
      otherConfig: diff(s.vdi.other_config, {
        ...sourceSnapshotVdiKeys(identity, datetime, contentKeyOf(s.vdi)),
        ...exported,
      }),
    })
  }
  const snapName = job.name === undefined ? undefined : snapshotName(job.name, vm.name_label)
  push({
    side: 'source',
    cls: 'VM',
    object: obj(snapRef, snap),
    otherConfig: diff(snap.other_config, { ...sourceSnapshotKeys(identity, datetime), ...exported }),
    ...(snapName === undefined || snap.name_label === snapName ? {} : { nameLabel: snapName }),
    ...(snap.is_a_template ? { clearIsATemplate: true as const } : {}),
  })

  return {
    identity,
    datetime,
    snapshot: obj(snapRef, snap),
    sourceVm: obj(snap.snapshot_of, vm),
    targetVm: obj(tgtRef, tgt),
    sr: obj(srRef, sr),
    replicaName: name,
    pairs,
    changes,
    warnings,
  }
}
