/**
 * Deciding what one pass does for one VM — which base, full or delta per disk and SR, what to
 * delete afterwards — as a pure function of XAPI records. Applying it is `execute-vm.ts`.
 * The base of each SR is `plan-base.ts`, what to delete `plan-retention.ts`.
 */
import { ValidationError, vmNotFound } from '../errors.js'
import {
  KEYS,
  datetimeSortKey,
  isStartBlocked,
  replicaBelongsTo,
  type PassIdentity,
  type SourceSnapshotMeta,
} from './metadata.js'
import { planSrBase, type DiskPlan, type PlanWarning } from './plan-base.js'
import {
  exportedNewestFirst,
  inPlaceReplicaKeys,
  inPlaceReplicas,
  interruptedCopiesOnSr,
  jobSnapshotsOf,
  keyedTargetVms,
  keyedTemplates,
  type JobSnapshot,
  type TargetVm,
} from './plan-history.js'
import { disksOf, objectRef, type ObjectRef, type PlanVm, type PoolRecords } from './plan-records.js'
import { replicasToDelete, type ReplicaRef } from './plan-retention.js'

export type { DiskPlan, FullReason, PlanWarning } from './plan-base.js'
export type { ObjectRef, PlanSr, PlanVbd, PlanVdi, PlanVm, PoolRecords } from './plan-records.js'
export type { ReplicaRef } from './plan-retention.js'

export interface PlanInput {
  readonly job: {
    readonly id: string
    readonly name: string
    readonly fullInterval: number
    readonly srs: readonly string[]
  }
  readonly schedule: { readonly id: string; readonly retention: number }
  readonly vmRef: string
  readonly source: PoolRecords
  /** the same object as `source` when replicating within one pool */
  readonly target: PoolRecords
  /** force every disk full (e.g. `run --full`) */
  readonly forceFull?: boolean
}

export interface SrPlan {
  readonly sr: ObjectRef
  /** the replica (or era-C target snapshot) the deltas go on top of */
  readonly baseReplica?: ReplicaRef
  /**
   * the base is a seeded template (an XVA import of a snapshot): before the transfer it is made
   * a VM (`is_a_template` false) protected as a replica is
   */
  readonly adoptBase?: true
  /**
   * XO's live in-place replica VMs of this job on the SR that carry none of its keys (XO strips
   * them after each run; only their keyed target snapshots link them to the job): before the
   * transfer each gets the job's keys and its newest snapshot's datetime, so that no tool loses
   * track of it once its snapshots are gone
   */
  readonly claimReplicas?: readonly ClaimedReplica[]
  readonly disks: readonly DiskPlan[]
  /** replicas to destroy once the new one is complete: beyond retention, or left by interrupted passes */
  readonly deleteReplicas: readonly ReplicaRef[]
}

/** An in-place replica VM and the job's keys it is given. */
export interface ClaimedReplica extends ReplicaRef {
  readonly keys: Readonly<Record<string, string>>
}

export interface BaseSnapshot extends ObjectRef {
  readonly datetime: string
  readonly deltaChainLength: number
  readonly era: SourceSnapshotMeta['era']
}

export interface VmPlan {
  readonly vm: ObjectRef
  readonly identity: PassIdentity
  /** newest exported snapshot of this job with a usable copy on every SR that has a base */
  readonly base?: BaseSnapshot
  readonly mode: 'full' | 'delta'
  /** `xo:backup:deltaChainLength` to write on the new snapshot after the transfer */
  readonly nextDeltaChainLength: number
  readonly targets: readonly SrPlan[]
  /** source snapshots to destroy after success (never the new one, which does not exist yet) */
  readonly deleteSnapshots: readonly ObjectRef[]
  readonly warnings: readonly PlanWarning[]
}

/** The VM cannot be replicated by this job at all. */
export class PlanRefusal extends ValidationError {
  constructor(code: 'VM_IS_REPLICA' | 'VM_IS_SNAPSHOT_OR_TEMPLATE' | 'SR_NOT_FOUND', message: string) {
    super(code, message)
  }
}

/**
 * Plans one VM of one pass. Throws {@link PlanRefusal} when the VM cannot be replicated.
 */
export function planVm(input: PlanInput): VmPlan {
  const { job, schedule, source, target } = input
  const vm = replicableVm(input)
  const identity: PassIdentity = { jobId: job.id, scheduleId: schedule.id, vmUuid: vm.uuid }
  const liveDisks = disksOf(vm, source)
  const { snapshots, debris } = jobSnapshotsOf(source, input.vmRef, vm, job.id)
  const candidates = exportedNewestFirst(snapshots)
  const targetVms = keyedTargetVms(target)
  const templates = keyedTemplates(target)
  const warnings: PlanWarning[] = []
  let usedBase: JobSnapshot | undefined
  const targets = job.srs.map((srUuid): SrPlan => {
    const sr = targetSr(input, srUuid)
    const mine = targetVms.filter(t => replicaBelongsTo(t.meta, identity, srUuid, 'job'))
    const inPlace = inPlaceReplicas(target, mine)
    const planned = planSrBase({
      vm,
      liveDisks,
      candidates,
      mine,
      templates,
      keyed: targetVms,
      identity,
      srRef: sr.ref,
      srUuid,
      srName: sr.name,
      target,
      fullInterval: job.fullInterval,
      forceFull: input.forceFull === true,
    })
    warnings.push(...planned.warnings)
    const base = planned.base
    if (base !== undefined && (usedBase === undefined || newer(base.snapshot, usedBase))) usedBase = base.snapshot
    // An adopted seed is one of the job's replicas from now on, and what an interrupted XO run
    // left on the SR without its SR key is the job's debris: retention counts both.
    const counted = [
      ...mine,
      ...(base?.adopt === true ? [base.replica] : []),
      ...interruptedCopiesOnSr(target, targetVms, identity, sr.ref),
    ]
    const deleteReplicas = replicasToDelete(counted, identity, srUuid, schedule.retention, inPlace)
    const claim = inPlace.flatMap((h): ClaimedReplica[] => {
      const keys = inPlaceReplicaKeys(h)
      if (keys === undefined || deleteReplicas.some(r => r.ref === h.ref)) return []
      return [{ ...objectRef(h.ref, h.vm), datetime: keys[KEYS.datetime], keys }]
    })
    return {
      sr,
      ...(base === undefined ? {} : { baseReplica: replicaRef(base.replica) }),
      ...(base?.adopt === true ? { adoptBase: true as const } : {}),
      ...(claim.length === 0 ? {} : { claimReplicas: claim }),
      disks: planned.disks,
      deleteReplicas,
    }
  })
  const anyDelta = targets.some(t => t.disks.some(d => d.mode === 'delta'))
  return {
    vm: objectRef(input.vmRef, vm),
    identity,
    ...(usedBase === undefined ? {} : { base: baseSnapshot(usedBase) }),
    mode: anyDelta ? 'delta' : 'full',
    nextDeltaChainLength: anyDelta && usedBase !== undefined ? usedBase.meta.deltaChainLength + 1 : 0,
    targets,
    // After success the new snapshot is the only base that matters; older ones (and debris of
    // crashed runs) go. A failed pass deletes nothing, so the previous base survives.
    deleteSnapshots: [...snapshots.map(c => objectRef(c.ref, c.vm)), ...debris],
    warnings,
  }
}

/** The live VM of `input.vmRef`, refused when it is missing, a snapshot, a template or this job's replica. */
function replicableVm(input: PlanInput): PlanVm {
  const { job } = input
  const vm = input.source.vms.get(input.vmRef)
  if (vm === undefined) throw vmNotFound(input.vmRef, 'the source pool')
  if (vm.is_a_snapshot || vm.is_a_template) {
    throw new PlanRefusal(
      'VM_IS_SNAPSHOT_OR_TEMPLATE',
      `VM ${vm.name_label} (${vm.uuid}) is a snapshot or template; select a VM`,
    )
  }
  // Replicating our own replica would chain replicas of replicas (XO #1811).
  if (vm.other_config[KEYS.job] === job.id && isStartBlocked(vm.blocked_operations)) {
    throw new PlanRefusal(
      'VM_IS_REPLICA',
      `VM ${vm.name_label} (${vm.uuid}) is a replica made by job ${job.name}; it cannot be replicated by it`,
    )
  }
  return vm
}

function targetSr(input: PlanInput, srUuid: string): ObjectRef {
  const entry = [...input.target.srs].find(([, sr]) => sr.uuid === srUuid)
  if (entry === undefined)
    throw new PlanRefusal(
      'SR_NOT_FOUND',
      `SR ${srUuid} of job ${input.job.name} not found on the target pool; fix the job's SRs`,
    )
  return objectRef(entry[0], entry[1])
}

const newer = (a: JobSnapshot, b: JobSnapshot): boolean =>
  datetimeSortKey(a.meta.datetime) > datetimeSortKey(b.meta.datetime)

const replicaRef = (t: TargetVm): ReplicaRef => ({ ...objectRef(t.ref, t.vm), datetime: t.meta.datetime })

const baseSnapshot = (s: JobSnapshot): BaseSnapshot => ({
  ...objectRef(s.ref, s.vm),
  datetime: s.meta.datetime,
  deltaChainLength: s.meta.deltaChainLength,
  era: s.meta.era,
})
