import type { Defaults } from '../../config/types.js'
import type { Job } from '../../jobs/types.js'
import type { HealthCheckEvent, VerifyEvent } from '../../recovery/check-events.js'
import type { FailoverEvent, RecoveryReportEvent } from '../../recovery/events.js'
import type { FailbackEvent, FailbackReportEvent } from '../../recovery/failback-events.js'
import type { PassEvent, ReplicationReportEvent, VmIdentity } from '../../replication/events.js'
import type { CleanupEvent } from '../../replication/leftovers.js'
import type { SeedExportEvent } from '../../replication/seed/export-seed.js'
import type { SeedEvent } from '../../replication/seed/seed.js'
import type { CompletionEvent, InventoryEvent, JobEditEvent, MonitoringEvent } from './operator-events.js'

/**
 * Everything the CLI shows is one of these events. Each kind has exactly one formatter in
 * `formatters.ts` (a `Record` over the kinds, so adding a kind without a formatter does not
 * compile); the renderer decides how it looks: TTY, plain timestamped lines, or NDJSON.
 */

/** Diagnostics shared by every command. */
export type DiagnosticEvent =
  | { readonly kind: 'info'; readonly message: string }
  /** shown only with --verbose */
  | { readonly kind: 'debug'; readonly message: string }
  /** a recoverable oddity; `code` is stable */
  | { readonly kind: 'warning'; readonly code: string; readonly message: string; readonly vm?: VmIdentity }
  /** the run failed; `stack` only for unexpected errors under --verbose */
  | {
      readonly kind: 'error'
      readonly code: string
      readonly message: string
      readonly exitCode: number
      readonly stack?: string
    }

/** Results of `xen-cr job …`. */
export type JobCommandEvent =
  | { readonly kind: 'job-created'; readonly job: Job; readonly crontab: string }
  | { readonly kind: 'job-list'; readonly jobs: readonly Job[] }
  | { readonly kind: 'job-show'; readonly job: Job; readonly crontab: string }
  | { readonly kind: 'job-deleted'; readonly id: string; readonly name: string }
  | { readonly kind: 'job-state'; readonly id: string; readonly name: string; readonly enabled: boolean }

/** Results of `xen-cr config …`; password sources are described, passwords never appear. */
export type ConfigCommandEvent =
  | {
      readonly kind: 'config-show'
      readonly file: string | null
      readonly pools: readonly {
        readonly name: string
        readonly url: string
        readonly user: string
        readonly password: string
        readonly allowUnauthorized: boolean
      }[]
      readonly defaults: Defaults
    }
  | {
      readonly kind: 'pool-check'
      readonly pool: string
      readonly url: string
      readonly ok: boolean
      readonly code?: string
      readonly message?: string
      /** https pools that logged in: the coordinator's certificate, `sha256:AB:…`, and whether the config pins it */
      readonly certificate?: { readonly fingerprint: string; readonly pinned: boolean }
    }

/** How one VM of a `run --due` job fared. */
export interface DueVmOutcome extends VmIdentity {
  /** `skipped`: another run's work (leased elsewhere, or replicated elsewhere since this run started) */
  readonly status: 'success' | 'failed' | 'skipped'
  /** failed: the error code */
  readonly code?: string
  /** skipped: why */
  readonly reason?: 'leased' | 'replicated'
  /** failed or skipped: one line */
  readonly message?: string
}

/** How one job of `run --due` fared: whether it ran, and each VM's status when it did. */
export interface DueJobOutcome {
  readonly id: string
  readonly name: string
  /**
   * `ok` ran and no VM failed, `failed` ran and a VM failed, `leased` every VM was another run's
   * (leased elsewhere, or replicated elsewhere since this run started: nothing done), `not-due`,
   * `disabled`, `error` it could not run (`code` says why)
   */
  readonly status: 'ok' | 'failed' | 'leased' | 'not-due' | 'disabled' | 'error'
  readonly code?: string
  readonly vms: readonly DueVmOutcome[]
}

/** The end of `xen-cr run --due`: every job of the store and the exit code that sums them up. */
export type RunCommandEvent = {
  readonly kind: 'run-due-done'
  readonly jobs: readonly DueJobOutcome[]
  readonly exitCode: number
}

/** Results and progress of `xen-cr seed` (and `xen-cr-seed`); the seed's warning is the diagnostic one. */
export type SeedCommandEvent =
  | Exclude<SeedEvent, { kind: 'seed-warning' }>
  | SeedExportEvent
  | {
      readonly kind: 'seed-exported'
      readonly dir: string
      readonly manifest: string
      readonly snapshot: { readonly uuid: string; readonly name: string }
      readonly bytes: number
    }
  | {
      readonly kind: 'seed-done'
      readonly written: boolean
      readonly job: string
      readonly replica: { readonly uuid: string; readonly name: string }
    }

/**
 * The pass engine's events (`replication/events.ts`) are rendered as they are; its `warning` is
 * the diagnostic one.
 */
export type OutputEvent =
  | DiagnosticEvent
  | Exclude<PassEvent, { kind: 'warning' }>
  | JobCommandEvent
  | ConfigCommandEvent
  | RunCommandEvent
  | ReplicationReportEvent
  | SeedCommandEvent
  | Exclude<FailoverEvent, { kind: 'warning' }>
  | RecoveryReportEvent
  | Exclude<VerifyEvent, { kind: 'warning' }>
  | Exclude<HealthCheckEvent, { kind: 'warning' }>
  | Exclude<FailbackEvent, { kind: 'warning' }>
  | FailbackReportEvent
  | MonitoringEvent
  | InventoryEvent
  | CompletionEvent
  | JobEditEvent
  | CleanupEvent

export type OutputEventKind = OutputEvent['kind']

export type OutputEventOf<K extends OutputEventKind> = Extract<OutputEvent, { kind: K }>
