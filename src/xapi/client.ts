/**
 * The one XAPI client of xen-cr: a typed facade over Vates' `xen-api` package, which owns the
 * RPC transports (JSON-RPC with XML-RPC fallback), the session and its renewal. This class adds
 * what `xen-api` leaves to its callers: credentials kept out of URLs, typed and normalised
 * records, per-call timeouts and AbortSignals, task watching without the full object cache,
 * a coordinator follow that understands `address:port`, and errors from our hierarchy.
 */
import { Xapi } from 'xen-api'
import { AbortedError, ConnectionError, OperationError, XapiError, XenCrError, isXapiError } from '../errors.js'
import { mapCallError } from './map-error.js'
import { normaliseRecord, normaliseValue } from './normalise-record.js'
import { displayUrl, parsePoolUrl, resolveMasterUrl } from './pool-url.js'
import { CALL_RETRY, RetryBudget, classifyCallFailure, mayRetryCall, type RetryPolicy } from './retry.js'
import { taskOutcome } from './task-outcome.js'
import { TaskWatcher } from './task-watcher.js'
import { applyTlsPolicy, type TlsPolicy } from './tls.js'
import type { Ref, RecordOf, TaskRecord, XapiClassName } from './types.js'
import { closeConnections, disableInternalMasterFollow, disableInternalSessionRenewal } from './xen-api-internals.js'

/** How to reach and log in to a pool; see {@link XapiClient.connect}. */
export interface XapiConnectOptions {
  /** `https://host[:port]`; credentials in it are removed and used only when `user`/`password` are empty */
  readonly url: string
  readonly user: string
  readonly password: string
  /** accept a self-signed or otherwise untrusted certificate (only when asked) */
  readonly allowUnauthorized?: boolean
  /** pinned host certificates, `sha256:AB:…` ({@link parseFingerprint} form): only these are accepted */
  readonly fingerprints?: readonly string[]
  /** `auto` (default) tries JSON-RPC and falls back to XML-RPC on hosts without it */
  readonly transport?: 'auto' | 'json-rpc' | 'xml-rpc'
  /** default timeout of one attempt of `call()`, ms (default 5 minutes) */
  readonly callTimeoutMs?: number
  /** how long a login (the first and every re-login) may take, ms (default 30 s) */
  readonly connectTimeoutMs?: number
  /** retries of transient call failures (see retry.ts for which); default {@link CALL_RETRY} */
  readonly retry?: RetryPolicy
  readonly signal?: AbortSignal
  /**
   * Start `xen-api`'s own event loop and object cache (default false). Task watching does not
   * need it; it is for callers that want the cache kept current.
   */
  readonly watchEvents?: boolean
}

/** Per-call cancellation and timeout. */
export interface CallOptions {
  readonly signal?: AbortSignal
  /** for `call`: defaults to the client's `callTimeoutMs`; for `callAsync`: the whole wait, no default */
  readonly timeoutMs?: number
}

interface PoolTarget {
  readonly origin: URL
  readonly user: string
  readonly password: string
  readonly allowUnauthorized: boolean
  readonly tls: TlsPolicy
  readonly transport: 'auto' | 'json-rpc' | 'xml-rpc'
  readonly watchEvents: boolean
}

const DEFAULT_CALL_TIMEOUT_MS = 5 * 60_000
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000
/** Cancelling and destroying an abandoned task: each call, the wait for it to settle, and close()'s wait for all. */
const BACKGROUND_CALL_TIMEOUT_MS = 10_000
const TASK_SETTLE_TIMEOUT_MS = 30_000
const CLOSE_WAIT_MS = 10_000
/** Coordinator changes followed per login or call before giving up. */
const MAX_MASTER_HOPS = 2

/**
 * A logged-in session with one pool's coordinator. Plain functions per concept (`vm.ts`,
 * `vdi.ts`, `transfer.ts`, …) take it as their first argument.
 */
export class XapiClient {
  #xapi: Xapi
  #target: PoolTarget
  readonly #timeouts: Timeouts
  readonly #retry: RetryPolicy
  readonly #tasks: TaskWatcher
  /** cleanups of abandoned tasks still running (see #dropTask) */
  readonly #background = new Set<Promise<void>>()
  #closed = false
  #failedCalls = 0

  /** The pool object of the pool this client is connected to. */
  readonly poolRef: Ref<'pool'>

  private constructor(xapi: Xapi, target: PoolTarget, poolRef: Ref<'pool'>, timeouts: Timeouts, retry: RetryPolicy) {
    this.#xapi = xapi
    this.#target = target
    this.poolRef = poolRef
    this.#timeouts = timeouts
    this.#retry = retry
    this.#tasks = new TaskWatcher(this)
  }

  /**
   * Logs in to the pool at `url` (following `HOST_IS_SLAVE` to the coordinator). Fails with a
   * `ConnectionError`: `POOL_UNREACHABLE`, `POOL_AUTH_FAILED` or `POOL_TLS`.
   */
  static async connect(options: XapiConnectOptions): Promise<XapiClient> {
    const parsed = parsePoolUrl(options.url)
    const target: PoolTarget = {
      origin: parsed.origin,
      user: options.user !== '' ? options.user : (parsed.user ?? ''),
      password: options.password !== '' ? options.password : (parsed.password ?? ''),
      allowUnauthorized: options.allowUnauthorized === true,
      tls: { allowUnauthorized: options.allowUnauthorized === true, fingerprints: options.fingerprints ?? [] },
      transport: options.transport ?? 'auto',
      watchEvents: options.watchEvents === true,
    }
    const timeouts: Timeouts = {
      callMs: options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
      connectMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    }
    const { xapi, target: master } = await openSession(target, timeouts.connectMs, options.signal)
    const poolRef = xapi.pool?.$ref
    if (typeof poolRef !== 'string') {
      await xapi.disconnect().catch(() => undefined)
      throw new ConnectionError(
        'POOL_UNREACHABLE',
        `${displayUrl(master.origin)} returned no pool record; check that the URL points at a XAPI host`,
        {
          url: displayUrl(master.origin),
        },
      )
    }
    return new XapiClient(xapi, master, poolRef as Ref<'pool'>, timeouts, options.retry ?? CALL_RETRY)
  }

  /** The coordinator's URL (`protocol//host[:port]`), never with credentials. */
  get url(): string {
    return displayUrl(this.#target.origin)
  }

  /** The current session, for the HTTP data paths (`session_id`). Treat it as a secret. */
  get sessionId(): string {
    if (this.#xapi.status !== 'connected') {
      throw new ConnectionError(
        'POOL_UNREACHABLE',
        `no session with ${this.url}: the client is not logged in; make any call to log in again`,
        { url: this.url },
      )
    }
    return this.#xapi.sessionId
  }

  /** Whether untrusted TLS certificates are accepted for this pool. */
  /**
   * How many calls have failed so far, retried ones included: a stretch of work during which it
   * did not move made no call whose effect is unknown (a pass records such a stretch as tidy).
   */
  get failedCalls(): number {
    return this.#failedCalls
  }

  get allowUnauthorized(): boolean {
    return this.#target.allowUnauthorized
  }

  /** How this pool's certificates are trusted, for the data paths' own requests. */
  get tls(): TlsPolicy {
    return this.#target.tls
  }

  /**
   * Calls `method` with the session prepended, retrying transient failures as retry.ts allows
   * for this method (bounded by the client's retry policy). Failures: `XapiError` (server code
   * and params exactly), `ConnectionError`, `AbortedError`, `OperationError` `CALL_TIMEOUT`.
   */
  async call<T = unknown>(method: string, args: readonly unknown[] = [], options: CallOptions = {}): Promise<T> {
    if (!createsTask(method)) return this.#callRetrying<T>(method, args, options)
    // The task this call makes is covered by the watcher's token chain when one is held before
    // the call is sent: watching it then needs no read of it (see task-watcher.ts).
    await this.#guard(this.#tasks.prime(), 'event.inject', options.signal, undefined).catch(() => undefined)
    const mark = this.#tasks.mark()
    const value = await this.#callRetrying<T>(method, args, options)
    if (typeof value === 'string') this.#tasks.created(value, mark)
    return value
  }

  async #callRetrying<T>(method: string, args: readonly unknown[], options: CallOptions): Promise<T> {
    const budget = new RetryBudget(this.#retry)
    for (;;) {
      const outcome = await this.#callOnce<T>(method, args, options)
      if (outcome.ok) return outcome.value
      this.#failedCalls++
      const { raw, mapped } = outcome
      // The signal's own abort is never retried, whatever the transport made of it.
      if (options.signal?.aborted === true) throw mapped
      if (!mayRetryCall(method, classifyCallFailure(raw)) || !(await budget.next(options.signal))) throw mapped
    }
  }

  async #callOnce<T>(
    method: string,
    args: readonly unknown[],
    options: CallOptions,
  ): Promise<{ ok: true; value: T } | { ok: false; raw: unknown; mapped: XenCrError }> {
    for (let hops = 0; ; hops++) {
      this.#assertOpen(method)
      try {
        await this.#ensureConnected(options.signal)
      } catch (error) {
        return { ok: false, raw: error instanceof LoginFailure ? error.raw : error, mapped: unwrapLogin(error) }
      }
      try {
        const raw = await this.#guard(
          this.#xapi.call(method, ...args),
          method,
          options.signal,
          options.timeoutMs ?? this.#timeouts.callMs,
        )
        return { ok: true, value: normaliseValue(raw) as T }
      } catch (error) {
        const mapped = mapCallError(error, this.#errorContext(method))
        // The coordinator moved (pool.designate_new_master, HA): reconnect there and retry.
        if (isXapiError(mapped, 'HOST_IS_SLAVE') && hops < MAX_MASTER_HOPS && mapped.params[0] !== undefined) {
          try {
            await this.#moveTo(resolveMasterUrl(this.#target.origin, mapped.params[0]), options.signal)
          } catch (moveError) {
            return { ok: false, raw: moveError, mapped: mapCallError(moveError, this.#errorContext(method)) }
          }
          continue
        }
        return { ok: false, raw: error, mapped }
      }
    }
  }

  /**
   * Runs `Async.<method>` and waits for its task through events; resolves with the parsed task
   * result (e.g. the new object's ref) and destroys the task. Aborting cancels the task. A task
   * that failed with a code saying it never ran (`TOO_MANY_PENDING_TASKS`, …) is started again.
   */
  async callAsync<T = unknown>(method: string, args: readonly unknown[] = [], options: CallOptions = {}): Promise<T> {
    const budget = new RetryBudget(this.#retry)
    for (;;) {
      const record = await this.#runTask(method, args, options)
      try {
        return taskOutcome(record, method) as T
      } catch (error) {
        if (classifyCallFailure(error) !== 'not-applied' || !(await budget.next(options.signal))) throw error
      }
    }
  }

  async #runTask(method: string, args: readonly unknown[], options: CallOptions): Promise<TaskRecord> {
    const taskRef = await this.call<Ref<'task'>>(
      `Async.${method}`,
      args,
      options.signal === undefined ? {} : { signal: options.signal },
    )
    let record: TaskRecord
    try {
      record = await this.#guard(this.#tasks.watch(taskRef, options.signal), method, options.signal, options.timeoutMs)
    } catch (error) {
      if (error instanceof AbortedError || (error instanceof XenCrError && error.code === 'CALL_TIMEOUT')) {
        this.#dropTask(taskRef)
      }
      throw error
    }
    // Settled tasks stay until destroyed (XAPI collects them only much later).
    await this.call('task.destroy', [taskRef]).catch(() => undefined)
    return record
  }

  /**
   * Cancels a task nobody waits for any more and destroys it once it has settled (XAPI only
   * records a destroy of a pending task), in the background so that an abort is not held up;
   * close() waits for it, bounded, so that the run does not end with our task left on the pool.
   */
  #dropTask(taskRef: Ref<'task'>): void {
    const bounded = { timeoutMs: BACKGROUND_CALL_TIMEOUT_MS }
    const work = (async (): Promise<void> => {
      await this.call('task.cancel', [taskRef], bounded).catch(() => undefined)
      await guard(this.#tasks.watch(taskRef), `task ${taskRef}`, undefined, TASK_SETTLE_TIMEOUT_MS).catch(
        () => undefined,
      )
      await this.call('task.destroy', [taskRef], bounded).catch(() => undefined)
    })()
    this.#background.add(work)
    void work.finally(() => this.#background.delete(work))
  }

  /** Resolves with the task's record once it has left `pending`. */
  watchTask(taskRef: Ref<'task'>, options: { signal?: AbortSignal } = {}): Promise<TaskRecord> {
    this.#assertOpen('task watching')
    return this.#tasks.watch(taskRef, options.signal)
  }

  /** Every object of class `cls`, by ref, as typed and normalised records. */
  async getAllRecords<C extends XapiClassName>(cls: C, options: CallOptions = {}): Promise<Map<Ref<C>, RecordOf<C>>> {
    const raw = await this.call<Record<string, unknown>>(`${cls}.get_all_records`, [], options)
    const records = new Map<Ref<C>, RecordOf<C>>()
    for (const [ref, record] of Object.entries(raw)) {
      records.set(ref as Ref<C>, normaliseRecord(cls, record))
    }
    return records
  }

  /** One object's record; `XapiError` `HANDLE_INVALID` when the ref names nothing. */
  async getRecord<C extends XapiClassName>(cls: C, ref: Ref<C>, options: CallOptions = {}): Promise<RecordOf<C>> {
    return normaliseRecord(cls, await this.call(`${cls}.get_record`, [ref], options))
  }

  /** The ref of the object with this uuid; `XapiError` `UUID_INVALID` when there is none. */
  async getByUuid<C extends XapiClassName>(cls: C, uuid: string, options: CallOptions = {}): Promise<Ref<C>> {
    return this.call<Ref<C>>(`${cls}.get_by_uuid`, [uuid], options)
  }

  /**
   * Sets (or with `null` removes) one entry of a map field. XAPI has no "set entry": remove
   * first (silent when absent), then add — as XO does, so no `MAP_DUPLICATE_KEY` is logged
   * server-side; a concurrent writer re-adding the key in between is retried.
   */
  async setMapEntry<C extends XapiClassName>(
    cls: C,
    ref: Ref<C>,
    field: string,
    key: string,
    value: string | null,
    options: CallOptions = {},
  ): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      await this.call(`${cls}.remove_from_${field}`, [ref, key], options)
      if (value === null) return
      try {
        await this.call(`${cls}.add_to_${field}`, [ref, key, value], options)
        return
      } catch (error) {
        if (!isXapiError(error, 'MAP_DUPLICATE_KEY') || attempt >= 2) throw error
      }
    }
  }

  /** Stops task watching and logs out. Further calls fail with `CLIENT_CLOSED`. */
  async close(): Promise<void> {
    if (this.#closed) return
    await this.#settle()
    // xen-api's own event loop (watchEvents) sits in a 60 s event.from; a change on the pool
    // object ends it now, so a finished CLI run does not linger.
    const woken = this.#target.watchEvents
      ? this.call('event.inject', ['pool', this.poolRef]).catch(() => undefined)
      : undefined
    await this.#tasks.close()
    await woken
    this.#closed = true
    await this.#xapi.disconnect().catch(() => undefined)
  }

  /**
   * Waits (bounded) for the cleanups of tasks this client abandoned (see #dropTask), so that
   * logging out does not cut them short and leave the task on the pool.
   */
  async #settle(): Promise<void> {
    if (this.#background.size === 0) return
    await guard(Promise.allSettled([...this.#background]), 'task cleanup', undefined, CLOSE_WAIT_MS).catch(
      () => undefined,
    )
  }

  #assertOpen(what: string): void {
    if (this.#closed) {
      throw new OperationError('CLIENT_CLOSED', `${what} on ${this.url}: the XAPI client is closed`)
    }
  }

  /**
   * Logs in again when `xen-api` has no session: after a SESSION_INVALID (xen-api drops the
   * session then, its own renewal being off: see xen-api-internals.ts) or a failed re-login. Calls
   * that arrive while a login is running wait for that same login (`connect()` is coalesced).
   */
  async #ensureConnected(signal: AbortSignal | undefined): Promise<void> {
    if (this.#xapi.status === 'connected') return
    const url = this.url
    try {
      await guard(this.#xapi.connect(), `login to ${url}`, signal, this.#timeouts.connectMs)
    } catch (error) {
      const mapped = loginError(
        mapCallError(error, { method: 'session.login_with_password', url, password: this.#target.password }),
        url,
        this.#target.user,
      )
      throw new LoginFailure(error, mapped)
    }
  }

  #errorContext(method: string): { method: string; url: string; password: string } {
    return { method, url: this.url, password: this.#target.password }
  }

  async #moveTo(origin: URL, signal: AbortSignal | undefined): Promise<void> {
    const { xapi, target } = await openSession({ ...this.#target, origin }, this.#timeouts.connectMs, signal)
    const previous = this.#xapi
    this.#xapi = xapi
    this.#target = target
    await previous.disconnect().catch(() => undefined)
  }

  /** `promise`, or an AbortedError / CALL_TIMEOUT error first. The loser is left to settle unobserved. */
  #guard<T>(
    promise: Promise<T>,
    method: string,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
  ): Promise<T> {
    return guard(promise, `${method} on ${this.url}`, signal, timeoutMs)
  }
}

/** Calls whose answer is a new task's ref. */
function createsTask(method: string): boolean {
  return method.startsWith('Async.') || method === 'task.create'
}

function guard<T>(
  promise: Promise<T>,
  what: string,
  signal: AbortSignal | undefined,
  timeoutMs: number | undefined,
  /** the timeout to name in the message when `timeoutMs` is what is left of it */
  configuredMs: number | undefined = timeoutMs,
): Promise<T> {
  promise.catch(() => undefined)
  if (signal === undefined && timeoutMs === undefined) return promise
  if (signal?.aborted === true) return Promise.reject(new AbortedError(`${what} aborted${becauseOf(signal)}`))
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  // Never settles unless interrupted; its listeners go as soon as either side wins.
  const interrupted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(new AbortedError(`${what} aborted${becauseOf(signal)}`))
    signal?.addEventListener('abort', onAbort, { once: true })
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        reject(
          new OperationError(
            'CALL_TIMEOUT',
            `${what}: no answer within ${configuredMs} ms; the host may be overloaded or the call stuck, retry later`,
          ),
        )
      }, timeoutMs)
    }
  })
  return Promise.race([promise, interrupted]).finally(() => {
    clearTimeout(timer)
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
  })
}

/** Why the signal aborted (a run or VM timeout, a signal), when its reason says: `: …`. */
function becauseOf(signal: AbortSignal | undefined): string {
  const reason: unknown = signal?.reason
  return reason instanceof XenCrError ? `: ${reason.message}` : ''
}

/**
 * Logs in at `target`, following `HOST_IS_SLAVE` ourselves: `xen-api` retries once with only
 * the hostname replaced, which breaks when the coordinator listens on another port.
 */
async function openSession(
  target: PoolTarget,
  connectTimeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<{ xapi: Xapi; target: PoolTarget }> {
  let current = target
  // One connect timeout for the whole login, retries included: a blackholed host fails within
  // it. A reset or a not-applied refusal (SESSION_INVALID, TOO_MANY_PENDING_TASKS…) is tried
  // again while time is left; a refused connection or an unknown name is reported at once (the
  // pool is down or misnamed, and the user should hear so now, exit 4).
  const deadline = Date.now() + connectTimeoutMs
  const budget = new RetryBudget({ ...CALL_RETRY, totalMs: connectTimeoutMs })
  for (let hops = 0; ; hops++) {
    const url = displayUrl(current.origin)
    const xapi = new Xapi({
      url,
      auth: { user: current.user, password: current.password },
      allowUnauthorized: current.allowUnauthorized,
      transport: current.transport,
      watchEvents: current.watchEvents,
      // Our own guard() times every call; xen-api's would build a TimeoutError (with a stack)
      // for every call made, about 5 % of the client's CPU in a pass of many small VMs.
      callTimeout: 0,
    })
    // Private xen-api field, valid for the pinned 4.7.6 (see xen-api-internals.ts): we follow
    // HOST_IS_SLAVE below, port included, where xen-api's own retry would keep the old port.
    disableInternalMasterFollow(xapi)
    applyTlsPolicy(xapi, current.tls)
    // Same pin: SESSION_INVALID reaches XapiClient.call, which logs in again once for every
    // call waiting, where xen-api's renewal would leave concurrent calls without a session.
    disableInternalSessionRenewal(xapi)
    try {
      const left = (): number => Math.max(1, deadline - Date.now())
      await guard(xapi.connect(), `login to ${url}`, signal, left(), connectTimeoutMs)
      // With its event loop on, xen-api fetches every class first; a close() racing that fetch
      // makes it warn on the console, so the client is handed out only once the cache is full.
      if (current.watchEvents) await guard(xapi.objectsFetched, `initial fetch from ${url}`, signal, left())
      return { xapi, target: current }
    } catch (error) {
      void xapi.disconnect().catch(() => undefined)
      // An aborted or timed-out login leaves xen-api's request waiting on a host that does not
      // answer; only closing its connection pool (a private field, valid for the pinned 4.7.6:
      // see xen-api-internals.ts) ends that socket, so the process can exit.
      if (signal?.aborted === true || (error instanceof XenCrError && error.code === 'CALL_TIMEOUT'))
        closeConnections(xapi)
      const mapped = mapCallError(error, { method: 'session.login_with_password', url, password: current.password })
      if (isXapiError(mapped, 'HOST_IS_SLAVE') && hops < MAX_MASTER_HOPS && mapped.params[0] !== undefined) {
        current = { ...current, origin: resolveMasterUrl(current.origin, mapped.params[0]) }
        continue
      }
      const kind = classifyCallFailure(error)
      const retryable = kind === 'unknown' || (kind === 'not-applied' && mapped instanceof XapiError)
      if (retryable && signal?.aborted !== true && Date.now() < deadline && (await budget.next(signal))) {
        hops--
        continue
      }
      throw loginError(mapped, url, current.user)
    }
  }
}

interface Timeouts {
  readonly callMs: number
  readonly connectMs: number
}

/** A failed re-login: the mapped error for the caller, the raw one to tell whether to retry. */
class LoginFailure extends Error {
  constructor(
    readonly raw: unknown,
    readonly mapped: XenCrError,
  ) {
    super(mapped.message)
  }
}

function unwrapLogin(error: unknown): XenCrError {
  if (error instanceof LoginFailure) return error.mapped
  return error instanceof XenCrError ? error : mapCallError(error, { method: 'login', url: '' })
}

/** Every login failure is a ConnectionError (exit 4); the server's code stays in the message. */
function loginError(error: XenCrError, url: string, user: string): XenCrError {
  if (error instanceof ConnectionError || error instanceof AbortedError) return error
  if (error instanceof XapiError) {
    if (error.xapiCode === 'SESSION_AUTHENTICATION_FAILED') {
      return new ConnectionError(
        'POOL_AUTH_FAILED',
        `login to ${url} as ${user} refused; check the user and password configured for this pool`,
        { url },
        { cause: error },
      )
    }
    return new ConnectionError(
      'POOL_UNREACHABLE',
      `login to ${url} failed with ${error.xapiCode}${error.params.length > 0 ? ` (${error.params.join(', ')})` : ''}; check that the URL points at the pool's coordinator`,
      { url },
      { cause: error },
    )
  }
  if (error.code === 'CALL_TIMEOUT') {
    const within = /no answer within (\d+) ms/.exec(error.message)
    const seconds = within === null ? '' : ` within ${Number(within[1]) / 1000} s (the connect timeout)`
    return new ConnectionError(
      'POOL_UNREACHABLE',
      `login to ${url} got no answer${seconds}; check the URL and that the host is up`,
      { url },
      { cause: error },
    )
  }
  return new ConnectionError('POOL_UNREACHABLE', `login to ${url} failed: ${error.message}`, { url }, { cause: error })
}
