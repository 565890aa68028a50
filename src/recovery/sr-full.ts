/**
 * XAPI's `SR_FULL [requested, maximum]` as one line an operator can act on: which SR, by how
 * much the operation would overflow it, and what to do. The code stays the server's
 * (`XAPI_SR_FULL`), so callers and `--json` match on it as on any XAPI error.
 */
import { isXapiError } from '../errors.js'
import { formatBytes } from '../jobs/rate.js'

export interface SrFullInfo {
  readonly code: string
  readonly message: string
}

/**
 * When `error` is `SR_FULL`: its code and a message naming SR `srName`, the size the operation
 * would take it to and the SR's size, then `advice` (given what to free: `at least 32 MiB`, or
 * `space` when the params are not sizes); else undefined.
 */
export function describeSrFull(
  error: unknown,
  srName: string,
  advice: (shortfall: string) => string,
): SrFullInfo | undefined {
  if (!isXapiError(error, 'SR_FULL')) return undefined
  const [requested, maximum] = error.params.map(Number)
  const sizes =
    requested !== undefined && maximum !== undefined && Number.isFinite(requested) && Number.isFinite(maximum)
      ? {
          over: `at least ${formatBytes(requested - maximum)}`,
          line: ` (${error.method} would take it to ${formatBytes(requested)} of its ${formatBytes(maximum)})`,
        }
      : { over: 'space', line: '' }
  return { code: error.code, message: `SR "${srName}" is full${sizes.line}; ${advice(sizes.over)}` }
}
