/**
 * Progress of a pass as typed events. The library emits them; only the CLI renders them (one
 * formatter per kind, so a new kind does not compile until it is handled).
 */
import type { JobListing } from './list.js'
import type { VmPlan } from './plan.js'

export interface VmIdentity {
  readonly uuid: string
  readonly name: string
}

export interface ReplicaInfo {
  readonly srUuid: string
  readonly srName: string
  readonly uuid: string
  readonly name: string
}

/** What happened to one VM in a pass. */
export type VmResult =
  | {
      readonly status: 'success'
      readonly vm: VmIdentity
      readonly mode: 'full' | 'delta'
      /** VHD bytes sent, all disks and SRs */
      readonly bytes: number
      /** disks sent, all SRs (a VM with two disks replicated to two SRs sent four) */
      readonly disks: number
      readonly durationMs: number
      readonly replicas: readonly ReplicaInfo[]
    }
  | {
      readonly status: 'failed'
      readonly vm: VmIdentity
      readonly durationMs: number
      readonly error: { readonly code: string; readonly message: string }
    }
  | {
      /** not this run's work: not a failure */
      readonly status: 'skipped'
      readonly vm: VmIdentity
      readonly durationMs: number
      /**
       * `leased`: another run holds the job's lease on the VM; `replicated`: another run
       * replicated it, under this schedule, after this one started
       */
      readonly reason: 'leased' | 'replicated'
      /** that other run: its host, process and run id */
      readonly holder: { readonly host: string; readonly pid: number; readonly run: string }
      /** leased: when its lease runs out unless renewed; replicated: when its pass of the VM started (ISO 8601) */
      readonly at: string
      /** one line, e.g. `leased by ctl-2/4711 until 2026-12-01T02:10:00.000Z` */
      readonly message: string
    }

export type PassEvent =
  | {
      readonly kind: 'pass-start'
      readonly job: { readonly id: string; readonly name: string }
      readonly scheduleId: string
      readonly vms: number
    }
  | { readonly kind: 'vm-start'; readonly vm: VmIdentity; readonly plan: VmPlan }
  | {
      readonly kind: 'disk-progress'
      readonly vm: VmIdentity
      readonly srUuid: string
      readonly disk: { readonly uuid: string; readonly name: string; readonly userdevice: string }
      readonly mode: 'full' | 'delta'
      /** bytes of the disk's VHD stream sent so far */
      readonly bytes: number
      /**
       * the exact length of the VHD stream, known from its header and block table before any
       * block is sent (absent until then); the last event of a disk has `bytes === total`
       */
      readonly total?: number
      readonly virtualSize: number
    }
  | { readonly kind: 'vm-done'; readonly result: VmResult }
  | { readonly kind: 'warning'; readonly code: string; readonly message: string; readonly vm?: VmIdentity }
  | { readonly kind: 'pass-done'; readonly results: readonly VmResult[] }

export type PassEventKind = PassEvent['kind']

export type PassEventSink = (event: PassEvent) => void

/** Reports the CLI shows as results (not progress): a dry run's plans, a job listing. */
export type ReplicationReportEvent =
  | {
      readonly kind: 'pass-plan'
      readonly job: { readonly id: string; readonly name: string }
      readonly scheduleId: string
      readonly plans: readonly VmPlan[]
    }
  | { readonly kind: 'replica-list'; readonly listings: readonly JobListing[] }
