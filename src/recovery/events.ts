/**
 * What failover and replica management report, as typed events and results. The library emits
 * them; only the CLI renders them.
 */
import type { FailoverPlan } from './failover-plan.js'
import type { SourceVm, VmReplicas } from './job-replicas.js'

/** The replica a failover VM was (or would be) made from. */
export interface ReplicaInfo {
  readonly uuid: string
  readonly name: string
  readonly datetime: string | undefined
  readonly ageMs: number | undefined
  readonly srUuid: string | undefined
  readonly srName: string
}

/** What happened to one VM of a failover. */
export type FailoverVmResult =
  | {
      readonly status: 'success'
      readonly vm: SourceVm
      readonly replica: ReplicaInfo
      /** the new, runnable VM */
      readonly failoverVm: { readonly uuid: string; readonly name: string }
      /** `copy` when the SR cannot clone */
      readonly via: 'clone' | 'copy'
      readonly started: boolean
      readonly vifs: number
      readonly durationMs: number
    }
  /** the clone's setup or start failed; what was made has been destroyed */
  | {
      readonly status: 'failed'
      readonly vm: SourceVm
      readonly replica: ReplicaInfo
      readonly error: { readonly code: string; readonly message: string }
      readonly durationMs: number
    }
  /** refused before anything was created for it */
  | {
      readonly status: 'refused'
      readonly vm: SourceVm
      readonly error: { readonly code: string; readonly message: string }
    }

export type FailoverEvent =
  | {
      readonly kind: 'failover-start'
      readonly job: { readonly id: string; readonly name: string }
      /** VMs that will be failed over (refused ones excluded) */
      readonly vms: number
    }
  | { readonly kind: 'failover-vm-start'; readonly vm: SourceVm; readonly replica: ReplicaInfo }
  | { readonly kind: 'failover-vm-done'; readonly result: FailoverVmResult }
  /** the next start group waits for the previous one's `start_delay` */
  | { readonly kind: 'failover-wait'; readonly afterOrder: number; readonly delayMs: number }
  | {
      readonly kind: 'warning'
      readonly code: string
      readonly message: string
      readonly vm?: { readonly uuid: string; readonly name: string }
    }

export type FailoverEventSink = (event: FailoverEvent) => void

/** One object a deletion removes (or skips). */
export interface DeletionItem {
  readonly side: 'target' | 'source'
  readonly what: 'replica' | 'snapshot'
  readonly uuid: string
  readonly name: string
  readonly vm: SourceVm
  readonly datetime: string | undefined
}

/** Results the CLI shows: a dry run's plan, a failover's outcome, a job's replicas, a deletion. */
export type RecoveryReportEvent =
  | {
      readonly kind: 'failover-plan'
      readonly job: { readonly id: string; readonly name: string }
      readonly plan: FailoverPlan
    }
  | {
      readonly kind: 'failover-done'
      readonly job: { readonly id: string; readonly name: string }
      readonly results: readonly FailoverVmResult[]
    }
  | {
      readonly kind: 'job-replicas'
      readonly job: { readonly id: string; readonly name: string }
      readonly vms: readonly VmReplicas[]
    }
  | {
      readonly kind: 'deletion-plan'
      readonly job: { readonly id: string; readonly name: string }
      readonly delete: readonly DeletionItem[]
      /** kept, each with why */
      readonly keep: readonly (DeletionItem & { readonly reason: string })[]
    }
  | { readonly kind: 'deleted'; readonly item: DeletionItem }
  | {
      readonly kind: 'deletion-done'
      readonly job: { readonly id: string; readonly name: string }
      readonly deleted: number
      readonly failed: number
    }
