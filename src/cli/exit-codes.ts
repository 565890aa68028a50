import { CommanderError } from 'commander'
import { isXenCrError, type ErrorCategory } from '../errors.js'

/** The exit codes of every xen-cr command (DESIGN.md "Exit codes"); the only place they are defined. */
export const ExitCode = {
  /** success */
  ok: 0,
  /** the work ran and at least one VM failed */
  failed: 1,
  /** usage or configuration error */
  usage: 2,
  /** nothing done because another run holds the lease */
  lease: 3,
  /** cannot reach or log in to a pool */
  connection: 4,
  /** validation refused the request; nothing was written */
  validation: 5,
} as const

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

const byCategory: Readonly<Record<ErrorCategory, ExitCode>> = {
  usage: ExitCode.usage,
  config: ExitCode.usage,
  connection: ExitCode.connection,
  lease: ExitCode.lease,
  validation: ExitCode.validation,
  failure: ExitCode.failed,
}

/** The exit code of every error of a category (and so of each code in `ERROR_CODES`). */
export function exitCodeOfCategory(category: ErrorCategory): ExitCode {
  return byCategory[category]
}

/** The exit code for an error reaching the CLI edge: by category for ours, 2 for commander's usage errors, 1 otherwise. */
export function exitCodeFor(error: unknown): ExitCode {
  if (isXenCrError(error)) return exitCodeOfCategory(error.category)
  if (error instanceof CommanderError) {
    // --help and --version end through exitOverride too
    return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage
  }
  return ExitCode.failed
}

/**
 * When several outcomes combine (VMs and jobs of one run), the most serious wins: any failure
 * beats success, and any other outcome beats "leased elsewhere" — 3 means nothing was done, so
 * `run --due` where one job was leased and another's VM failed must say 1, or cron stays silent.
 */
export function worstExitCode(a: ExitCode, b: ExitCode): ExitCode {
  if (a === ExitCode.ok) return b
  if (a === ExitCode.lease && b !== ExitCode.ok) return b
  return a
}
