/**
 * When a failed XAPI call or disk transfer may be tried again, and how long to wait first.
 *
 * The rule that keeps retries from creating duplicates: a failure is retried only when the
 * request provably did not take effect, or when doing it twice is harmless.
 * - `not-applied`: the request never reached the server (connection refused, DNS, connect
 *   timeout, xen-api refusing to send without a session) or the server refused it before running
 *   it (`SESSION_INVALID`, `TOO_MANY_PENDING_TASKS`, `HOST_IS_SLAVE`, `HOST_STILL_BOOTING`): safe
 *   for every method, `VM.create`, `VDI.clone` and `VM.snapshot` included.
 * - `unknown`: the request may have run (a connection reset or dropped after it was sent, a call
 *   timeout, an HTTP 5xx): retried only for idempotent methods (reads, `set_*`,
 *   `remove_from_*`). A `VM.snapshot` whose answer was lost may have made a snapshot; sending it
 *   again would make a second one nobody owns, so the failure goes to the pass, whose cleanup
 *   recognises what it made by its keys.
 * - `logical`: the server ran the request and said no (`HANDLE_INVALID`, `MAP_DUPLICATE_KEY`,
 *   `VM_BAD_POWER_STATE`, `SR_FULL`, …): never retried, the same call would fail the same way.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { AbortedError, ConnectionError, XapiError, XenCrError } from '../errors.js'

export type FailureKind = 'not-applied' | 'unknown' | 'logical'

/** Bounds of a retry loop: attempts in all (the first included) and the time they may take. */
export interface RetryPolicy {
  readonly attempts: number
  /** first backoff ceiling, doubled per attempt up to `capMs` (full jitter: a random wait below it) */
  readonly baseMs: number
  readonly capMs: number
  /** no new attempt starts after this long since the first one */
  readonly totalMs: number
}

/** Per XAPI call: a few quick tries, a minute at most. */
export const CALL_RETRY: RetryPolicy = { attempts: 5, baseMs: 250, capMs: 8_000, totalMs: 60_000 }

/** Per disk transfer: a cut stream restarts that disk, a few times, over at most 10 minutes. */
export const DISK_RETRY: RetryPolicy = { attempts: 4, baseMs: 1_000, capMs: 15_000, totalMs: 10 * 60_000 }

/** XAPI codes meaning "refused before running it; try again (maybe elsewhere)". */
const NOT_APPLIED_XAPI_CODES = new Set([
  'SESSION_INVALID',
  'TOO_MANY_PENDING_TASKS',
  'HOST_IS_SLAVE',
  'HOST_STILL_BOOTING',
])

/** Socket codes raised before a request left this machine. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
])

/** Socket codes that may come after the request was sent. */
const MAYBE_SENT_CODES = new Set([
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
])

function codeOf(error: unknown, depth = 0): string | undefined {
  if (error === null || typeof error !== 'object' || depth > 4) return undefined
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string' && (NOT_SENT_CODES.has(code) || MAYBE_SENT_CODES.has(code))) return code
  return codeOf((error as { cause?: unknown }).cause, depth + 1)
}

/**
 * Classifies what `xen-api` (or undici beneath it) threw for one call, before it is mapped to
 * our errors (the mapping keeps the message, not the socket code).
 */
export function classifyCallFailure(error: unknown): FailureKind {
  if (error instanceof AbortedError) return 'logical'
  if (error instanceof XenCrError) {
    if (error.code === 'CALL_TIMEOUT') return 'unknown'
    if (error instanceof XapiError) return NOT_APPLIED_XAPI_CODES.has(error.xapiCode) ? 'not-applied' : 'logical'
    return 'logical'
  }
  if (error === null || typeof error !== 'object') return 'logical'
  const { code, params } = error as { code?: unknown; params?: unknown }
  // a XAPI failure as xen-api reports it: a code and the server's params
  if (typeof code === 'string' && Array.isArray(params)) {
    return NOT_APPLIED_XAPI_CODES.has(code) ? 'not-applied' : 'logical'
  }
  // xen-api asserts it has a session before sending anything: a call racing a re-login
  // (`Expected "actual" to be strictly unequal to: undefined`) was never sent.
  if (code === 'ERR_ASSERTION') return 'not-applied'
  const socket = codeOf(error)
  if (socket !== undefined) return NOT_SENT_CODES.has(socket) ? 'not-applied' : 'unknown'
  const message = error instanceof Error ? error.message : ''
  if (/socket hang up|other side closed|premature close/i.test(message)) return 'unknown'
  const status = /^unexpect(?:ed)? statusCode (\d+)/.exec(message)
  if (status !== null && Number(status[1]) >= 500) return 'unknown'
  return 'logical'
}

/**
 * Classifies a failed disk transfer (errors already ours): a cut or stalled stream, a host
 * that could not be reached or answered 5xx, a task that failed with a not-applied code.
 * Writing the same VHD stream into the same target disk again is idempotent (every block the
 * stream carries is rewritten whole, the others are left as they were), so `unknown` is
 * retryable for a disk; only logical failures are not.
 */
export function classifyTransferFailure(error: unknown): FailureKind {
  if (!(error instanceof XenCrError) || error instanceof AbortedError) return 'logical'
  if (error instanceof XapiError)
    return (
      // VDI_IN_USE: the host has not yet let go of the disk after the cut import (dom0 detaches it
      // a moment later); the import was refused, nothing written. VDI_IO_ERROR: what an import
      // task reports when its body ended short (a stream cut on either side); a disk that really
      // fails to write fails every attempt and the budget ends it.
      NOT_APPLIED_XAPI_CODES.has(error.xapiCode) || error.xapiCode === 'VDI_IN_USE'
        ? 'not-applied'
        : error.xapiCode === 'VDI_IO_ERROR'
          ? 'unknown'
          : 'logical'
    )
  if (error instanceof ConnectionError) return error.code === 'POOL_UNREACHABLE' ? 'unknown' : 'logical'
  switch (error.code) {
    case 'CALL_TIMEOUT':
    case 'DISK_TRANSFER_FAILED':
    case 'TRANSFER_INCOMPLETE':
    case 'TRANSFER_INTERRUPTED':
    case 'TRANSFER_LENGTH_MISMATCH':
    case 'TRANSFER_NO_RESPONSE':
    case 'TRANSFER_STALLED':
      return 'unknown'
    case 'TRANSFER_HTTP_STATUS':
      return /HTTP 5\d\d/.test(error.message) ? 'unknown' : 'logical'
    default:
      return 'logical'
  }
}

/** Methods that can run twice with the effect of once. */
export function isIdempotent(method: string): boolean {
  const name = method.startsWith('Async.') ? method.slice('Async.'.length) : method
  const dot = name.indexOf('.')
  const action = dot === -1 ? name : name.slice(dot + 1)
  if (name.startsWith('event.') || name === 'task.cancel' || name === 'system.listMethods') return true
  return (
    action.startsWith('get_') ||
    action === 'get_all' ||
    action === 'get_all_records' ||
    action.startsWith('set_') ||
    action.startsWith('remove_from_')
  )
}

/** Whether a failure of `method` classified `kind` may be retried (see the rule at the top). */
export function mayRetryCall(method: string, kind: FailureKind): boolean {
  return kind === 'not-applied' || (kind === 'unknown' && isIdempotent(method))
}

/** Full jitter (AWS Architecture blog, "Exponential Backoff And Jitter"): uniform in [0, min(cap, base·2^n)). */
export function backoffMs(retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(policy.capMs, policy.baseMs * 2 ** retry))
}

/** Where a retry loop stands: it may go on while attempts and time are left. */
export class RetryBudget {
  readonly #policy: RetryPolicy
  readonly #started = Date.now()
  #attempts = 1

  constructor(policy: RetryPolicy) {
    this.#policy = policy
  }

  /** attempts made so far */
  get attempts(): number {
    return this.#attempts
  }

  /**
   * Waits the backoff before the next attempt and counts it; false (without waiting) when the
   * budget is spent. Rejects with AbortedError when `signal` aborts during the wait.
   */
  async next(signal?: AbortSignal): Promise<boolean> {
    if (this.#attempts >= this.#policy.attempts) return false
    const wait = backoffMs(this.#attempts - 1, this.#policy)
    if (Date.now() - this.#started + wait > this.#policy.totalMs) return false
    if (signal?.aborted === true) throw new AbortedError('aborted while waiting to retry')
    await sleep(wait, undefined, signal === undefined ? {} : { signal }).catch(() => {
      throw new AbortedError('aborted while waiting to retry')
    })
    this.#attempts++
    return true
  }
}
