import type { Job } from '../../jobs/types.js'

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
  | { readonly kind: 'warning'; readonly code: string; readonly message: string }
  /** the run failed; `stack` only for unexpected errors under --verbose */
  | { readonly kind: 'error'; readonly code: string; readonly message: string; readonly exitCode: number; readonly stack?: string }

/** Progress of a replication pass (`run`); the pass engine's events map onto these. */
export type PassEvent =
  | { readonly kind: 'vm-start'; readonly vm: string; readonly vmUuid: string; readonly mode?: 'full' | 'delta' }
  | {
      readonly kind: 'disk-progress'
      readonly vm: string
      readonly vmUuid: string
      readonly disk: string
      readonly bytes: number
      readonly total?: number
    }
  | {
      readonly kind: 'vm-done'
      readonly vm: string
      readonly vmUuid: string
      readonly mode: 'full' | 'delta'
      readonly bytes: number
      readonly durationMs: number
    }
  | { readonly kind: 'vm-failed'; readonly vm: string; readonly vmUuid: string; readonly code: string; readonly message: string }

/** Results of `xen-cr job …`. */
export type JobCommandEvent =
  | { readonly kind: 'job-created'; readonly job: Job; readonly crontab: string }
  | { readonly kind: 'job-list'; readonly jobs: readonly Job[] }
  | { readonly kind: 'job-show'; readonly job: Job; readonly crontab: string }
  | { readonly kind: 'job-deleted'; readonly id: string; readonly name: string }
  | { readonly kind: 'job-state'; readonly id: string; readonly name: string; readonly enabled: boolean }

export type OutputEvent = DiagnosticEvent | PassEvent | JobCommandEvent

export type OutputEventKind = OutputEvent['kind']

export type OutputEventOf<K extends OutputEventKind> = Extract<OutputEvent, { kind: K }>
