/**
 * The checks of a seed request against the records of both pools that find what it writes on,
 * in the order a user fixes them: ids, the source snapshot and its VM, the target VM, the disks
 * paired by userdevice, the target SR. Claims come after (`seed-claims.ts`). Each failure is a
 * {@link SeedRefusal}; nothing has been written.
 */
import { isUuid } from '../../jobs/job-document.js'
import type { VmSelection } from '../../jobs/types.js'
import { REPLICA_TAG } from '../metadata.js'
import {
  disksOf,
  findByUuid,
  seedObject,
  type Found,
  type SeedDisk,
  type SeedDiskPair,
  type SeedRecords,
  type SeedRequest,
  type SeedSr,
  type SeedVm,
} from './seed-records.js'
import { SeedRefusal } from './seed-refusal.js'

export interface SeedWarning {
  readonly code: 'SEED_JOB_NOT_IN_STORE'
  readonly message: string
}

/** What the checks found: the objects the seed writes on, each checked. */
export interface SeedSubject {
  readonly snapshot: Found<SeedVm>
  /** the live VM the snapshot is of */
  readonly vm: Found<SeedVm>
  readonly target: Found<SeedVm>
  /** the snapshot's and the target VM's disks, in userdevice order, pairwise alike */
  readonly srcDisks: readonly SeedDisk[]
  readonly tgtDisks: readonly SeedDisk[]
  readonly pairs: readonly SeedDiskPair[]
  readonly sr: Found<SeedSr>
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

/**
 * Finds and checks what `request` writes on. `samePool` says that `source` and `target` are the records of
 * one pool.
 * @throws SeedRefusal with a `SEED_*` code
 */
export function checkSeed(
  request: SeedRequest,
  source: SeedRecords,
  target: SeedRecords,
  samePool: boolean,
): { subject: SeedSubject; warnings: SeedWarning[] } {
  checkSeedIds({
    snapshot: request.snapshotUuid,
    targetVm: request.targetVmUuid,
    job: request.job.id,
    schedule: request.scheduleId,
  })
  const jobLabel = seedJobLabel(request)
  const { snapshot, vm } = sourceSide(request, source, jobLabel)
  const targetVm = targetSide(request, target, snapshot, samePool)
  const disks = pairDisks(snapshot.record, targetVm.record, source, target)
  const { sr, warnings } = targetSr(request, targetVm.record, disks.tgtDisks, target, jobLabel)
  return { subject: { snapshot, vm, target: targetVm, ...disks, sr }, warnings }
}

/** How messages name the job: by name when it is in the store. */
export function seedJobLabel(request: SeedRequest): string {
  const { job } = request
  return job.name === undefined ? `job ${job.id}` : `job ${job.name}`
}

/** `vm` is selected by the job's uuids, tags or "all" (replicas are never selected by tag or all). */
function selects(vms: VmSelection, vm: SeedVm): boolean {
  if (vms.uuids.some(u => u.toLowerCase() === vm.uuid.toLowerCase())) return true
  if (vm.tags.includes(REPLICA_TAG)) return false
  return vms.all || vm.tags.some(t => vms.tags.includes(t))
}

/** The source snapshot and the live VM it is a snapshot of, which the job must select. */
function sourceSide(
  request: SeedRequest,
  source: SeedRecords,
  jobLabel: string,
): { snapshot: Found<SeedVm>; vm: Found<SeedVm> } {
  const snapshot = findByUuid(source.vms, request.snapshotUuid)
  if (snapshot === undefined)
    throw new SeedRefusal(
      'SEED_SNAPSHOT_NOT_FOUND',
      `snapshot ${request.snapshotUuid} is not on the source pool; check the uuid (xe snapshot-list) and the source pool`,
    )
  const snap = snapshot.record
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
  if (request.job.vms !== undefined && !selects(request.job.vms, vm)) {
    throw new SeedRefusal(
      'SEED_VM_NOT_IN_JOB',
      `snapshot ${snap.uuid} is of VM ${vm.name_label} (${vm.uuid}), which ${jobLabel} does not replicate; seed a snapshot of one of its VMs`,
    )
  }
  return { snapshot, vm: { ref: snap.snapshot_of, record: vm } }
}

/** The target VM: a halted VM or template (the XVA import), not the source VM itself. */
function targetSide(
  request: SeedRequest,
  target: SeedRecords,
  snapshot: Found<SeedVm>,
  samePool: boolean,
): Found<SeedVm> {
  const found = findByUuid(target.vms, request.targetVmUuid)
  if (found === undefined)
    throw new SeedRefusal(
      'SEED_TARGET_NOT_FOUND',
      `VM ${request.targetVmUuid} is not on the target pool; check the uuid (xe vm-list) and the target pool`,
    )
  const tgt = found.record
  // A template is accepted: an XVA export of a snapshot imports as one (XAPI does it), and the
  // seed makes it a VM (`seed-changes.ts`). A snapshot or dom0 is never a copy.
  if (tgt.is_a_snapshot || tgt.is_control_domain) {
    const kind = tgt.is_a_snapshot ? 'a snapshot' : 'a control domain'
    throw new SeedRefusal(
      'SEED_TARGET_NOT_A_VM',
      `target ${tgt.uuid} ("${tgt.name_label}") is ${kind}; give the uuid of the VM or template you imported`,
    )
  }
  if (samePool && found.ref === snapshot.record.snapshot_of) {
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
  return found
}

/** The snapshot's disks paired with the target's by userdevice; every slot and size must match. */
function pairDisks(
  snap: SeedVm,
  tgt: SeedVm,
  source: SeedRecords,
  target: SeedRecords,
): { srcDisks: SeedDisk[]; tgtDisks: SeedDisk[]; pairs: SeedDiskPair[] } {
  const srcDisks = disksOf(snap, source)
  const tgtDisks = disksOf(tgt, target)
  if (srcDisks.length === 0)
    throw new SeedRefusal('SEED_NO_DISKS', `snapshot ${snap.uuid} has no disks; nothing to seed`)
  const describe = (disks: SeedDisk[]): string =>
    disks.map(d => `${d.userdevice}:${d.vdi.virtual_size}`).join(' ') || 'none'
  const sameSlots =
    srcDisks.length === tgtDisks.length && srcDisks.every((d, i) => tgtDisks[i]?.userdevice === d.userdevice)
  if (!sameSlots) {
    throw new SeedRefusal(
      'SEED_DISKS_MISMATCH',
      `disks differ: snapshot ${snap.uuid} has [${describe(srcDisks)}], target VM ${tgt.uuid} has [${describe(tgtDisks)}] (userdevice:bytes); import every disk of the snapshot`,
    )
  }
  const pairs = srcDisks.map((s, i): SeedDiskPair => {
    const t = tgtDisks[i]!
    if (s.vdi.virtual_size !== t.vdi.virtual_size) {
      throw new SeedRefusal(
        'SEED_DISKS_MISMATCH',
        `disk ${s.userdevice} differs in size: snapshot disk ${s.vdi.uuid} is ${s.vdi.virtual_size} bytes, target disk ${t.vdi.uuid} is ${t.vdi.virtual_size}; import the snapshot's disks unchanged`,
      )
    }
    return {
      userdevice: s.userdevice,
      virtualSize: s.vdi.virtual_size,
      source: seedObject(s.ref, s.vdi),
      target: seedObject(t.ref, t.vdi),
    }
  })
  return { srcDisks, tgtDisks, pairs }
}

/** The one SR of the target VM's disks, which must be one of the job's when the job is known. */
function targetSr(
  request: SeedRequest,
  tgt: SeedVm,
  tgtDisks: readonly SeedDisk[],
  target: SeedRecords,
  jobLabel: string,
): { sr: Found<SeedSr>; warnings: SeedWarning[] } {
  const { job } = request
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
  const found = { ref: srRef, record: sr }
  if (job.srs === undefined) {
    const message = `job ${job.id} is not in the job store: its VMs and SRs were not checked; create it with xen-cr job create --id ${job.id} before the first run`
    return { sr: found, warnings: [{ code: 'SEED_JOB_NOT_IN_STORE', message }] }
  }
  if (!job.srs.some(u => u.toLowerCase() === sr.uuid.toLowerCase())) {
    throw new SeedRefusal(
      'SEED_SR_NOT_IN_JOB',
      `target disks are on SR ${sr.name_label} (${sr.uuid}), which is not a target of ${jobLabel} (${job.srs.join(', ') || 'none'}); import on one of its SRs`,
    )
  }
  return { sr: found, warnings: [] }
}
