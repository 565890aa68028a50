/**
 * What failback reports, as typed events and results. The library emits them; only the CLI
 * renders them. Disk transfers report through the pass's own `disk-progress` event, so a
 * failback shows and counts bytes exactly as a pass does.
 */
import type { PassEvent } from '../replication/events.js'
import type { FailbackMode, FailbackPlan, FailedOverVm } from './failback-plan.js'

export type { FailbackMode, FailedOverVm } from './failback-plan.js'

export interface NamedObject {
  readonly uuid: string
  readonly name: string
}

/** One disk sent back: the blocks changed since failover, as a VHD stream of `bytes`. */
export interface FailbackDiskResult {
  readonly userdevice: string
  readonly name: string
  /** the disk it landed in, on the source pool */
  readonly vdi: NamedObject
  readonly bytes: number
}

/** What the job's next pass starts from: a snapshot of the failed-back VM and its copy on the target. */
export interface JobResume {
  /** absent when no copy could be made on any SR of the job */
  readonly snapshot?: NamedObject
  readonly replicas: readonly (NamedObject & { readonly srUuid: string })[]
  /** job SRs that got no copy (no usable replica of the base there): the next pass sends a full there */
  readonly fullOn: readonly string[]
}

/** What happened to one failed-over VM. */
export type FailbackVmResult =
  | {
      readonly status: 'success'
      readonly failedOver: FailedOverVm
      readonly mode: FailbackMode
      /** the VM on the source pool that now holds the failed-over VM's disks */
      readonly vm: NamedObject
      /** the VM the job replicated; in place, the same as `vm` */
      readonly original: NamedObject | undefined
      readonly replica: NamedObject & { readonly datetime: string }
      readonly base: NamedObject & { readonly datetime: string }
      /** VHD bytes sent, all disks */
      readonly bytes: number
      readonly disks: readonly FailbackDiskResult[]
      readonly started: boolean
      readonly resume: JobResume
      readonly durationMs: number
    }
  /** something failed after work began; everything made for it has been removed */
  | {
      readonly status: 'failed'
      readonly failedOver: FailedOverVm
      readonly mode: FailbackMode
      readonly error: { readonly code: string; readonly message: string }
      readonly durationMs: number
    }
  /** refused before anything was created or written for it */
  | {
      readonly status: 'refused'
      readonly failedOver: FailedOverVm
      readonly error: { readonly code: string; readonly message: string }
    }

type DiskProgress = Extract<PassEvent, { kind: 'disk-progress' }>

export type FailbackEvent =
  | {
      readonly kind: 'failback-start'
      readonly job: { readonly id: string; readonly name: string }
      /** VMs that will be sent back (refused ones excluded) */
      readonly vms: number
    }
  | {
      readonly kind: 'failback-vm-start'
      readonly failedOver: FailedOverVm
      readonly mode: FailbackMode
      readonly base: NamedObject & { readonly datetime: string }
    }
  | DiskProgress
  | { readonly kind: 'failback-vm-done'; readonly result: FailbackVmResult }
  | {
      readonly kind: 'warning'
      readonly code: string
      readonly message: string
      readonly vm?: { readonly uuid: string; readonly name: string }
    }

export type FailbackEventSink = (event: FailbackEvent) => void

/** Results the CLI shows: a dry run's plan, the outcome (with the job's VM selection change, if any). */
export type FailbackReportEvent =
  | {
      readonly kind: 'failback-plan'
      readonly job: { readonly id: string; readonly name: string }
      readonly plan: FailbackPlan
    }
  | {
      readonly kind: 'failback-done'
      readonly job: { readonly id: string; readonly name: string }
      readonly results: readonly FailbackVmResult[]
      /** the job's VM uuids replaced (original → failed-back VM), so its next pass replicates the new VM */
      readonly jobVms: readonly { readonly from: string; readonly to: string }[]
    }
