/**
 * Deciding a failover, as a pure function of the job's replicas: which replica each chosen VM
 * comes from (the newest complete one, or the newest at or before `--at`), which VMs are refused
 * and why, and in which order they start (the source's `order`, ascending, each group followed by
 * its `start_delay`). Applying it is `failover.ts`.
 */
import { UsageError, type ErrorCodeOf } from '../errors.js'
import { parseXapiDateTime } from '../replication/metadata.js'
import type { JobReplica, SourceVm, VmReplicas } from './job-replicas.js'

/** Why a VM is not failed over; nothing is created for it. */
export type FailoverRefusalCode = Extract<
  ErrorCodeOf<'validation'>,
  'NO_REPLICA' | 'NO_COMPLETE_REPLICA' | 'NO_REPLICA_AT' | 'REPLICA_STARTED' | 'FAILOVER_VM_EXISTS'
>

export type FailoverEntry =
  | {
      readonly status: 'ready'
      readonly vm: SourceVm
      readonly replica: JobReplica
      /** name of the VM failover creates */
      readonly name: string
    }
  | {
      readonly status: 'refused'
      readonly vm: SourceVm
      readonly code: FailoverRefusalCode
      readonly message: string
    }

export type ReadyEntry = Extract<FailoverEntry, { status: 'ready' }>

/** VMs started together; the next group starts `startDelayMs` after this one is up. */
export interface StartGroup {
  readonly order: number
  readonly startDelayMs: number
  readonly entries: readonly ReadyEntry[]
}

export interface FailoverPlan {
  readonly at: Date | undefined
  /** one per chosen VM, by name */
  readonly entries: readonly FailoverEntry[]
  /** the ready entries in start order */
  readonly groups: readonly StartGroup[]
}

export interface FailoverPlanInput {
  readonly job: { readonly name: string }
  readonly replicas: readonly VmReplicas[]
  /** `--vm`: source VM uuids or names; default every VM of the job */
  readonly vms?: readonly string[]
  readonly at?: Date
  readonly nameSuffix: string
  /** names of the VMs already on the target pool (a second failover must not make a twin) */
  readonly targetVmNames: ReadonlySet<string>
}

/** Default `--name-suffix`: the failover VM of `web` is `web (failover)`. */
export const DEFAULT_NAME_SUFFIX = ' (failover)'

/**
 * `--at`: XAPI's `YYYYMMDDTHH:MM:SSZ`, the compact `YYYYMMDDTHHmmssZ` of replica names, or ISO
 * 8601. A date and time without a zone is UTC, as every datetime xen-cr prints is.
 */
export function parseAt(value: string): Date {
  const utc = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value) ? `${value}Z` : value
  const date = /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(`${value}T00:00:00Z`) : parseXapiDateTime(utc)
  if (date === undefined || Number.isNaN(date.getTime()))
    throw new UsageError(
      'BAD_DATETIME',
      `--at ${value}: not a datetime; use 20260821T15:31:45Z (as xen-cr replicas prints) or 2026-08-21T15:31:45Z`,
    )
  return date
}

function matches(vm: SourceVm, handle: string): boolean {
  return vm.uuid === handle || vm.name === handle
}

function vmLabel(vm: SourceVm): string {
  return vm.uuid === undefined || vm.uuid === vm.name ? vm.name : `${vm.name} (${vm.uuid})`
}

function planOne(input: FailoverPlanInput, group: VmReplicas): FailoverEntry {
  const { vm, replicas } = group
  const refuse = (code: FailoverRefusalCode, message: string): FailoverEntry => ({
    status: 'refused',
    vm,
    code,
    message,
  })
  const complete = replicas.filter(r => r.complete)
  if (replicas.length === 0)
    return refuse('NO_REPLICA', `VM ${vmLabel(vm)} has no replica of job ${input.job.name} on the target pool`)
  if (complete.length === 0)
    return refuse(
      'NO_COMPLETE_REPLICA',
      `VM ${vmLabel(vm)} has no complete replica of job ${input.job.name}: ${replicas.length} interrupted one(s) only`,
    )
  const at = input.at
  // `replicas` is newest first, so the first one at or before --at is the newest such.
  const candidate =
    at === undefined
      ? complete[0]!
      : complete.find(r => (parseXapiDateTime(r.datetime)?.getTime() ?? Infinity) <= at.getTime())
  if (candidate === undefined) {
    const oldest = complete[complete.length - 1]!
    return refuse(
      'NO_REPLICA_AT',
      `VM ${vmLabel(vm)} has no complete replica at or before ${at?.toISOString() ?? ''}; its oldest is ${oldest.datetime ?? '?'}`,
    )
  }
  if (candidate.started) {
    const older = complete.slice(complete.indexOf(candidate) + 1).find(r => !r.started)
    return refuse(
      'REPLICA_STARTED',
      `replica ${candidate.name} (${candidate.uuid}) of VM ${vmLabel(vm)} was started or its start unblocked: its disks may have changed since ${candidate.datetime ?? '?'}` +
        (older === undefined ? '' : `; --at ${older.datetime ?? ''} picks the older untouched one`),
    )
  }
  const name = `${vm.name}${input.nameSuffix}`
  if (input.targetVmNames.has(name))
    return refuse(
      'FAILOVER_VM_EXISTS',
      `a VM named "${name}" already exists on the target pool (an earlier failover?); check it, or choose another --name-suffix`,
    )
  return { status: 'ready', vm, replica: candidate, name }
}

/**
 * Plans the failover of the chosen VMs of a job.
 * @throws UsageError `VM_NOT_IN_JOB` when a `--vm` names no VM of the job
 */
export function planFailover(input: FailoverPlanInput): FailoverPlan {
  let chosen = input.replicas
  if (input.vms !== undefined) {
    for (const handle of input.vms) {
      if (!input.replicas.some(g => matches(g.vm, handle)))
        throw new UsageError(
          'VM_NOT_IN_JOB',
          `--vm ${handle}: no VM of job ${input.job.name} has this uuid or name; xen-cr replicas ${input.job.name} lists them`,
        )
    }
    chosen = input.replicas.filter(g => input.vms!.some(h => matches(g.vm, h)))
  }
  const entries = chosen.map(g => planOne(input, g))
  const ready = entries.filter((e): e is ReadyEntry => e.status === 'ready')
  const orders = [...new Set(ready.map(e => e.replica.order))].sort((a, b) => a - b)
  const groups = orders.map(order => {
    const members = ready.filter(e => e.replica.order === order)
    return {
      order,
      startDelayMs: Math.max(0, ...members.map(e => e.replica.startDelay)) * 1000,
      entries: members,
    }
  })
  return { at: input.at, entries, groups }
}
