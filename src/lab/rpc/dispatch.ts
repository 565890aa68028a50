/**
 * Method dispatch in XAPI's order (reference §1.4): unknown method → parameter count →
 * session → member host (HOST_IS_SLAVE) → removed message → unmarshalling → faults → run,
 * synchronously or as `Async.*` with a task.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { isXapiFault } from '../fault.js'
import type { LabPool } from '../pool.js'
import { encodeXmlValue } from '../wire/xmlrpc.js'
import type { DecodedValue, WireValue } from '../wire/values.js'
import { coerce, type Arg, type MethodRegistry } from './registry.js'
import { asReleaseSends, hasMessage } from './versions.js'

/** What goes back for one call: a value, a XAPI failure, or a dropped connection (fault injection). */
export type DispatchOutcome =
  | {
      readonly kind: 'success'
      readonly value: WireValue
      /** system.listMethods: no Status/Value wrapper */ readonly bare?: boolean
    }
  | { readonly kind: 'failure'; readonly code: string; readonly params: readonly string[] }
  | { readonly kind: 'drop' }

/** The pool, API and receiving host of a call. */
export interface DispatchTarget {
  readonly pool: LabPool
  readonly registry: MethodRegistry
  readonly hostRef: string
}

function failure(code: string, ...params: string[]): DispatchOutcome {
  return { kind: 'failure', code, params }
}

function fromError(error: unknown): DispatchOutcome {
  if (isXapiFault(error)) return { kind: 'failure', code: error.code, params: error.params }
  return failure('INTERNAL_ERROR', error instanceof Error ? error.message : String(error))
}

/** A parameter as the one string a failure carries: scalars as they read, anything else as JSON. */
function asText(value: DecodedValue | undefined): string {
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined)
    return String(value)
  return JSON.stringify(value instanceof Date ? value.toISOString() : value)
}

/** The first string (depth-first) holding a replacement character: where undecodable bytes were. */
function firstBadString(value: DecodedValue): string | undefined {
  if (typeof value === 'string') return value.includes('\uFFFD') ? value : undefined
  if (Array.isArray(value)) {
    for (const item of value) {
      const bad = firstBadString(item)
      if (bad !== undefined) return bad
    }
  } else if (typeof value === 'object' && value !== null && !(value instanceof Date) && !Buffer.isBuffer(value)) {
    for (const [key, item] of Object.entries(value)) {
      const bad = firstBadString(key) ?? firstBadString(item)
      if (bad !== undefined) return bad
    }
  }
  return undefined
}

/** Runs one decoded call in XAPI's dispatch order. */
export async function dispatch(
  target: DispatchTarget,
  wireMethod: string,
  params: readonly DecodedValue[],
  options: { invalidUtf8?: boolean } = {},
): Promise<DispatchOutcome> {
  const { pool, registry, hostRef } = target
  const isAsync = wireMethod.startsWith('Async.')
  const name = isAsync ? wireMethod.slice('Async.'.length) : wireMethod
  // a message the emulated release (e.g. XenServer 6.5) did not have is unknown there
  const found = registry.lookup(name)
  const def = found !== undefined && hasMessage(pool, found.name) ? found : undefined
  const isMaster = hostRef === pool.masterRef

  if (def === undefined) {
    if (params.length === 0) return failure('MESSAGE_METHOD_UNKNOWN', wireMethod)
    // With parameters XAPI first validates the first one as a session (host extensions take one).
    if (typeof params[0] !== 'string' || !pool.isSession(params[0]))
      return failure('SESSION_INVALID', asText(params[0]))
    return failure('MESSAGE_METHOD_UNKNOWN', wireMethod)
  }

  const takesSession = def.session !== false
  const received = params.length - (takesSession ? 1 : 0)
  const required = def.params.length - (def.defaulted ?? 0)
  if (received < required || received > def.params.length) {
    return failure('MESSAGE_PARAMETER_COUNT_MISMATCH', def.name, String(required), String(received))
  }

  let sessionRef = ''
  if (takesSession) {
    const session = params[0]
    if (typeof session !== 'string' || !pool.isSession(session)) return failure('SESSION_INVALID', asText(session))
    sessionRef = session
  }
  if (!isMaster && (takesSession || def.name === 'session.login_with_password')) {
    return failure('HOST_IS_SLAVE', pool.hostAddress(pool.masterRef))
  }
  if (def.removed === true) return failure('MESSAGE_REMOVED')
  if (isAsync && def.async !== true) return failure('Fault', `No async mode for this operation (rpc: ${wireMethod})`)

  if (options.invalidUtf8 === true) {
    const bad = firstBadString([...params])
    if (bad !== undefined) return failure('INVALID_VALUE', 'Invalid UTF-8 string in parameter', bad)
  }

  let args: Arg[]
  try {
    args = params.slice(takesSession ? 1 : 0).map((value, i) => coerce(def.params[i]!, value))
  } catch (error) {
    return fromError(error)
  }

  const plan = pool.faults.planCall(def.name)
  // An Async call answers with its task at once; injected latency then delays the operation
  // itself (and a task.cancel ends the wait), as a slow operation on a real host would.
  if (plan.delayMs > 0 && (!isAsync || plan.then?.action === 'drop'))
    await sleep(plan.delayMs, undefined, { signal: pool.closing }).catch(() => undefined)
  if (plan.then?.action === 'drop') return { kind: 'drop' }
  const injected = plan.then

  if (!isAsync) {
    if (injected !== undefined) return failure(injected.code, ...injected.params)
    try {
      const value = asReleaseSends(
        pool,
        def.name,
        await def.handler({ pool, hostRef, sessionRef, method: def.name, task: undefined }, args),
      )
      return def.name === 'system.listMethods' ? { kind: 'success', value, bare: true } : { kind: 'success', value }
    } catch (error) {
      return fromError(error)
    }
  }

  const task = pool.tasks.create(wireMethod, '')
  // The task ref goes back first; the operation runs afterwards and completes the task.
  setImmediate(() => {
    void (async () => {
      try {
        const deadline = Date.now() + plan.delayMs
        while (Date.now() < deadline && !task.cancelRequested && !pool.closing.aborted) {
          await pool.db.waitForChange(deadline - Date.now(), pool.closing)
        }
        // A lab that stopped meanwhile runs nothing more.
        if (pool.closing.aborted) return
        task.checkCancelled()
        if (injected !== undefined) {
          task.fail(injected.code, injected.params)
          return
        }
        const value = await def.handler({ pool, hostRef, sessionRef, method: def.name, task }, args)
        task.succeed(encodeXmlValue(value))
      } catch (error) {
        const outcome = fromError(error)
        if (outcome.kind === 'failure') task.fail(outcome.code, outcome.params)
      }
    })()
  })
  return { kind: 'success', value: task.ref }
}
