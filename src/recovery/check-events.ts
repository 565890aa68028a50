/**
 * What `verify` and `health-check` report, as typed events and results. The library emits them;
 * only the CLI renders them.
 */
import type { ReplicaInfo } from './events.js'
import type { SourceVm } from './job-replicas.js'

export interface ErrorInfo {
  readonly code: string
  readonly message: string
}

export interface JobRef {
  readonly id: string
  readonly name: string
}

/** How one side of a disk comparison was read. */
export interface SideRead {
  /** `nbd`: random-access reads of the compared blocks only; `stream`: a raw `/export_raw_vdi` */
  readonly via: 'nbd' | 'stream'
  /** bytes taken from the host */
  readonly bytes: number
}

/** One replica disk against the source snapshot disk it is a copy of. */
export interface DiskComparison {
  readonly userdevice: string
  readonly replicaDisk: { readonly uuid: string; readonly name: string }
  readonly snapshotDisk: { readonly uuid: string; readonly name: string }
  readonly virtualSize: number
  readonly mode: 'full' | 'sample'
  readonly equal: boolean
  /** 2 MiB blocks compared (full: up to the first difference) */
  readonly blocksCompared: number
  /** sample: the blocks read, ascending */
  readonly sampled?: readonly number[]
  /** the first 2 MiB block whose hashes differ, and its byte offset */
  readonly firstDifference?: { readonly block: number; readonly offset: number }
  /** sample: how many of the sampled blocks differ */
  readonly differingBlocks?: number
  /** the two disks do not even have the same virtual size (nothing was read) */
  readonly sizeDiffers?: boolean
  readonly source: SideRead
  readonly target: SideRead
}

/** What happened to one VM of a verification. */
export type VerifyVmResult =
  | {
      readonly status: 'equal' | 'different'
      readonly vm: SourceVm
      readonly replica: ReplicaInfo
      readonly snapshot: { readonly uuid: string; readonly name: string }
      readonly disks: readonly DiskComparison[]
      /** `REPLICA_DIFFERS` when a disk differs */
      readonly error?: ErrorInfo
      readonly durationMs: number
    }
  /** reading or comparing failed (a transfer, the source pool, an abort) */
  | {
      readonly status: 'failed'
      readonly vm: SourceVm
      readonly replica: ReplicaInfo
      readonly error: ErrorInfo
      readonly durationMs: number
    }
  /** nothing to compare: no replica, or its base snapshot is gone */
  | { readonly status: 'refused'; readonly vm: SourceVm; readonly error: ErrorInfo }

export type VerifyEvent =
  | { readonly kind: 'verify-start'; readonly job: JobRef; readonly vms: number; readonly mode: 'full' | 'sample' }
  | {
      readonly kind: 'verify-vm-start'
      readonly vm: SourceVm
      readonly replica: ReplicaInfo
      readonly snapshot: { readonly uuid: string; readonly name: string }
    }
  | {
      readonly kind: 'verify-progress'
      readonly vm: SourceVm
      readonly userdevice: string
      /** bytes compared on both sides so far */
      readonly bytes: number
      /** bytes to compare (full: the virtual size; sample: the sampled blocks) */
      readonly total: number
    }
  | { readonly kind: 'verify-disk-done'; readonly vm: SourceVm; readonly disk: DiskComparison }
  | { readonly kind: 'verify-vm-done'; readonly result: VerifyVmResult }
  | { readonly kind: 'verify-done'; readonly job: JobRef; readonly results: readonly VerifyVmResult[] }
  | {
      readonly kind: 'warning'
      readonly code: string
      readonly message: string
      readonly vm?: { readonly uuid: string; readonly name: string }
    }

export type VerifyEventSink = (event: VerifyEvent) => void

/** The stages of one health check, in order. */
export type HealthCheckStep = 'cloning' | 'copying' | 'starting' | 'running' | 'tools' | 'verdict' | 'destroying'

/** What happened to one VM of a health check. */
export type HealthCheckVmResult =
  | {
      readonly status: 'success' | 'failed'
      readonly vm: SourceVm
      readonly replica: ReplicaInfo
      /** the temporary VM, gone again unless `cleanedUp` is false */
      readonly clone: { readonly uuid: string; readonly name: string } | undefined
      readonly via: 'clone' | 'copy'
      /** `xenstore`: the guest's verdict in `vm-data/xo-backup-health-check` was awaited too */
      readonly mode: 'tools' | 'xenstore'
      /** ms from `VM.start` until each stage was reached */
      readonly reached: { readonly running?: number; readonly tools?: number; readonly verdict?: number }
      readonly error?: ErrorInfo
      /** false: the clone could not be removed (a warning names it) */
      readonly cleanedUp: boolean
      readonly durationMs: number
    }
  | { readonly status: 'refused'; readonly vm: SourceVm; readonly error: ErrorInfo }

export type HealthCheckEvent =
  | { readonly kind: 'health-check-start'; readonly job: JobRef; readonly vms: number; readonly timeoutMs: number }
  | {
      readonly kind: 'health-check-step'
      readonly vm: SourceVm
      readonly step: HealthCheckStep
      /** the temporary VM's name */
      readonly name: string
    }
  | { readonly kind: 'health-check-vm-done'; readonly result: HealthCheckVmResult }
  | { readonly kind: 'health-check-done'; readonly job: JobRef; readonly results: readonly HealthCheckVmResult[] }
  | {
      readonly kind: 'warning'
      readonly code: string
      readonly message: string
      readonly vm?: { readonly uuid: string; readonly name: string }
    }

export type HealthCheckEventSink = (event: HealthCheckEvent) => void
