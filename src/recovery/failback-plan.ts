/**
 * Deciding a failback, as a pure function of both pools' records: for each failed-over VM of the
 * job, the replica it was cloned from (its failover keys say which), that replica's base snapshot
 * on the source pool (the replica's `xo:copy_of`), and per disk the three disks a delta needs —
 * the failed-over disk, the replica disk it shares content with, and the base snapshot disk whose
 * content equals that replica disk. Anything that breaks the chain refuses the VM: a delta on the
 * wrong base would silently corrupt it. Applying the plan is `failback.ts`.
 */
import type { ErrorCodeOf } from '../errors.js'
import type { Job } from '../jobs/types.js'
import { KEYS, RECOVERY_KEYS, isStartBlocked, readReplica, readSourceSnapshot } from '../replication/metadata.js'
import { disksOf, type PlanDisk, type PlanVm, type PoolRecords } from '../replication/plan-records.js'
import { sourceVmName } from './job-replicas.js'

/** Why a failed-over VM is not sent back; nothing is created or written for it. */
export type FailbackRefusalCode = Extract<
  ErrorCodeOf<'validation'>,
  'NOT_FAILED_OVER' | 'FAILBACK_NO_BASE' | 'IN_PLACE_REFUSED'
>

/** A failed-over VM on the target pool, the one failback sends back. */
export interface FailedOverVm {
  readonly uuid: string
  readonly name: string
  readonly powerState: string
}

/** `new`: a new VM on clones of the base snapshot's disks; `in-place`: the original VM's own disks. */
export type FailbackMode = 'new' | 'in-place'

interface Located {
  readonly ref: string
  readonly uuid: string
  readonly name: string
}

/** One disk of a failed-over VM and where its delta comes from and goes. */
export interface FailbackDisk {
  readonly userdevice: string
  /** the failed-over VM's disk (its snapshot is what travels) */
  readonly failedOver: Located & { readonly virtualSize: number }
  /** absent for a disk added after failover: it travels in full */
  readonly delta?: {
    /** the replica's disk it was cloned from: the export's base, on the target pool */
    readonly replica: Located
    /** the base snapshot's disk (source pool), whose content equals the replica disk's */
    readonly base: Located & { readonly srRef: string }
    /** the original VM's disk that base is a snapshot of, when it still has it */
    readonly original?: Located
  }
}

export type FailbackEntry =
  | {
      readonly status: 'ready'
      readonly failedOver: FailedOverVm & { readonly ref: string }
      readonly mode: FailbackMode
      readonly replica: Located & { readonly datetime: string; readonly srUuid: string; readonly srRef: string }
      readonly base: Located & {
        readonly datetime: string
        readonly deltaChainLength: number
        /** the job schedule the failed-back VM's snapshots go under */
        readonly scheduleId: string
      }
      /** the VM the job replicated, when it is still on the source pool */
      readonly original?: Located & { readonly powerState: string }
      /** the name of the new VM (in place: the original's, unchanged) */
      readonly name: string
      readonly disks: readonly FailbackDisk[]
    }
  | {
      readonly status: 'refused'
      readonly failedOver: FailedOverVm
      readonly code: FailbackRefusalCode
      readonly message: string
    }

export type ReadyFailback = Extract<FailbackEntry, { status: 'ready' }>

export interface FailbackPlan {
  readonly mode: FailbackMode
  /** one per chosen failed-over VM (or unmatched `--vm`), by name */
  readonly entries: readonly FailbackEntry[]
}

export interface FailbackPlanInput {
  readonly job: Pick<Job, 'id' | 'name' | 'schedules'>
  readonly source: PoolRecords
  readonly target: PoolRecords
  /** `--vm`: failed-over VM uuids or names, or the uuids of the VMs they stand in for; default all */
  readonly vms?: readonly string[]
  readonly mode: FailbackMode
  /** appended to the original VM's name for the new VM */
  readonly nameSuffix: string
}

const located = (ref: string, r: { readonly uuid: string; readonly name_label: string }): Located => ({
  ref,
  uuid: r.uuid,
  name: r.name_label,
})

const failedOverOf = (vm: PlanVm): FailedOverVm => ({
  uuid: vm.uuid,
  name: vm.name_label,
  powerState: vm.power_state,
})

/** Plans the failback of the job's failed-over VMs. */
export function planFailback(input: FailbackPlanInput): FailbackPlan {
  const { job, target } = input
  const failedOver = [...target.vms].filter(
    ([, vm]) => !vm.is_a_snapshot && !vm.is_a_template && vm.other_config[RECOVERY_KEYS.failoverJob] === job.id,
  )
  const entries: FailbackEntry[] = []
  let chosen = failedOver
  if (input.vms !== undefined) {
    chosen = []
    for (const handle of input.vms) {
      const matches = failedOver.filter(([, vm]) => matchesHandle(vm, handle, target))
      if (matches.length === 0) {
        entries.push({
          status: 'refused',
          failedOver: { uuid: handle, name: handle, powerState: 'unknown' },
          code: 'NOT_FAILED_OVER',
          message: `no VM made by xen-cr failover of job ${job.name} on the target pool matches ${handle}`,
        })
      }
      for (const match of matches) if (!chosen.includes(match)) chosen.push(match)
    }
  }
  for (const [ref, vm] of chosen) entries.push(planOne(input, ref, vm))
  entries.sort((a, b) => a.failedOver.name.localeCompare(b.failedOver.name))
  return { mode: input.mode, entries }
}

/** A failed-over VM by its uuid or name, or by the uuid of the source VM its replica copies. */
function matchesHandle(vm: PlanVm, handle: string, target: PoolRecords): boolean {
  if (vm.uuid === handle || vm.name_label === handle) return true
  const replica = findByUuid(target, vm.other_config[RECOVERY_KEYS.failoverReplica])
  return replica?.[1].other_config[KEYS.vm] === handle
}

function findByUuid(pool: PoolRecords, uuid: string | undefined): [string, PlanVm] | undefined {
  if (uuid === undefined) return undefined
  return [...pool.vms].find(([, vm]) => vm.uuid === uuid)
}

type Refusal = Extract<FailbackEntry, { status: 'refused' }>

function planOne(input: FailbackPlanInput, ref: string, vm: PlanVm): FailbackEntry {
  const { job, source, target } = input
  const refuse = (code: FailbackRefusalCode, message: string): Refusal => ({
    status: 'refused',
    failedOver: failedOverOf(vm),
    code,
    message,
  })
  const label = `${vm.name_label} (${vm.uuid})`
  const replicaUuid = vm.other_config[RECOVERY_KEYS.failoverReplica]
  const replicaFound = findByUuid(target, replicaUuid)
  if (replicaFound === undefined)
    return refuse(
      'FAILBACK_NO_BASE',
      `the replica ${replicaUuid ?? '?'} that ${label} was failed over from is no longer on the target pool (retention or a deletion removed it); there is no base for a delta`,
    )
  const [replicaRef, replica] = replicaFound
  const meta = readReplica(replica)
  if (!meta.complete || meta.datetime === undefined)
    return refuse('FAILBACK_NO_BASE', `the replica ${replica.name_label} of ${label} is not complete`)
  if (!isStartBlocked(replica.blocked_operations) || replica.power_state !== 'Halted')
    return refuse(
      'FAILBACK_NO_BASE',
      `the replica ${replica.name_label} (${replica.uuid}) that ${label} came from was started or its start unblocked since; its disks may no longer equal its base`,
    )
  const srRef = [...target.srs].find(([, sr]) => sr.uuid === meta.srUuid)?.[0]
  const baseFound = findByUuid(source, meta.copyOf)
  if (baseFound === undefined || !baseFound[1].is_a_snapshot)
    return refuse(
      'FAILBACK_NO_BASE',
      `the base snapshot ${meta.copyOf ?? '?'} of replica ${replica.name_label} is no longer on the source pool; there is no base for a delta`,
    )
  const [baseRef, base] = baseFound
  const baseDisks = disksOf(base, source)
  const baseMeta = readSourceSnapshot(
    base.other_config,
    baseDisks.map(d => d.vdi.other_config),
  )
  const replicaDisks = disksOf(replica, target)
  const original = source.vms.get(base.snapshot_of)
  const originalDisks = original === undefined ? [] : disksOf(original, source)
  const disks: FailbackDisk[] = []
  for (const disk of disksOf(vm, target)) {
    const planned = planDisk(disk, replicaDisks, baseDisks, originalDisks)
    if (typeof planned === 'string') return refuse('FAILBACK_NO_BASE', `${label}: ${planned}`)
    disks.push(planned)
  }
  if (!disks.some(d => d.delta !== undefined))
    return refuse('FAILBACK_NO_BASE', `no disk of ${label} comes from its replica's disks; nothing to send as a delta`)
  const scheduleId =
    job.schedules.find(s => s.id === base.other_config[KEYS.schedule])?.id ?? job.schedules[0]?.id ?? ''
  const originalName = original?.name_label ?? sourceVmName(replica.name_label, job.name)
  const entry: ReadyFailback = {
    status: 'ready',
    failedOver: { ...failedOverOf(vm), ref },
    mode: input.mode,
    replica: {
      ...located(replicaRef, replica),
      datetime: meta.datetime,
      srUuid: meta.srUuid ?? '',
      srRef: srRef ?? '',
    },
    base: {
      ...located(baseRef, base),
      datetime: baseMeta?.datetime ?? '',
      deltaChainLength: baseMeta?.deltaChainLength ?? 0,
      scheduleId,
    },
    ...(original === undefined
      ? {}
      : { original: { ...located(base.snapshot_of, original), powerState: original.power_state } }),
    name: input.mode === 'in-place' ? originalName : `${originalName}${input.nameSuffix}`,
    disks,
  }
  if (input.mode === 'in-place') {
    const why = inPlaceRefusal(entry, originalDisks)
    if (why !== undefined) return refuse('IN_PLACE_REFUSED', `${why}; nothing written: fail back to a new VM instead`)
  }
  return entry
}

/** The disk's plan, or why the chain from it back to the base is broken. */
function planDisk(
  disk: PlanDisk,
  replicaDisks: readonly PlanDisk[],
  baseDisks: readonly PlanDisk[],
  originalDisks: readonly PlanDisk[],
): FailbackDisk | string {
  const failedOver = { ...located(disk.ref, disk.vdi), virtualSize: disk.vdi.virtual_size }
  const from = disk.vdi.other_config[RECOVERY_KEYS.failoverReplicaVdi]
  if (from === undefined) return { userdevice: disk.userdevice, failedOver }
  const replicaDisk = replicaDisks.find(d => d.vdi.uuid === from)
  if (replicaDisk === undefined) return `disk ${disk.vdi.name_label} came from replica disk ${from}, which is gone`
  const baseDisk = baseDisks.find(d => d.vdi.uuid === replicaDisk.vdi.other_config[KEYS.copyOf])
  if (baseDisk === undefined)
    return `the base snapshot has no disk ${replicaDisk.vdi.other_config[KEYS.copyOf] ?? '?'} that replica disk ${replicaDisk.vdi.name_label} is a copy of`
  const originalDisk = originalDisks.find(d => d.ref === baseDisk.vdi.snapshot_of)
  return {
    userdevice: disk.userdevice,
    failedOver,
    delta: {
      replica: located(replicaDisk.ref, replicaDisk.vdi),
      base: { ...located(baseDisk.ref, baseDisk.vdi), srRef: baseDisk.vdi.SR },
      ...(originalDisk === undefined ? {} : { original: located(originalDisk.ref, originalDisk.vdi) }),
    },
  }
}

/**
 * In place needs the original VM as the base left it, which its records can show: still there,
 * halted, and its disks exactly the ones the base snapshot was taken of, one per failed-over disk.
 * (Its content since the base is checked by reading the changed blocks, before anything is written.)
 */
function inPlaceRefusal(entry: ReadyFailback, originalDisks: readonly PlanDisk[]): string | undefined {
  const original = entry.original
  if (original === undefined) return `the original VM of ${entry.failedOver.name} is no longer on the source pool`
  const label = `the original VM ${original.name} (${original.uuid})`
  if (original.powerState !== 'Halted') return `${label} is ${original.powerState}, not halted`
  const missing = entry.disks.find(d => d.delta?.original === undefined)
  if (missing !== undefined)
    return `${label} has no disk for disk ${missing.userdevice} of ${entry.failedOver.name} (added after failover, or replaced since the base)`
  if (originalDisks.length !== entry.disks.length)
    return `${label} has ${originalDisks.length} disks, ${entry.failedOver.name} ${entry.disks.length}`
  return undefined
}
