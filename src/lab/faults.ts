/**
 * Fault injection for one pool (from the spec or at run time): make an API method fail with a
 * given error, slow it down, or drop the connection, on its Nth call or every call; and faults
 * for the disk data paths, handed to the disk handlers through `takeFault`.
 */
import type { DataPathFault, DataPathKind } from './views.js'

/** A fault as the spec and the control API describe it. */
export type LabFault =
  /** `method` (wire name without `Async.`, e.g. `VM.snapshot`) fails with `code` and `params` */
  | {
      readonly kind: 'error'
      readonly method: string
      readonly code: string
      readonly params?: readonly string[]
      readonly nth?: number
    }
  /** every matching call (all calls without `method`) waits `ms` first */
  | { readonly kind: 'latency'; readonly method?: string; readonly ms: number; readonly nth?: number }
  /** the connection is destroyed without an answer */
  | { readonly kind: 'drop'; readonly method: string; readonly nth?: number }
  /** a disk transfer (`export` or `import`, of one VDI uuid or any) misbehaves as {@link DataPathFault} says */
  | ({
      readonly kind: 'data-path'
      readonly direction: DataPathKind
      readonly vdi?: string
      readonly nth?: number
    } & DataPathFault)

/**
 * `nth` counts matching calls from the moment the fault was installed (1 = the next one); the
 * fault fires once on that call and is then spent. Without `nth` it fires on every call.
 */
interface Armed {
  readonly fault: LabFault
  seen: number
  spent: boolean
}

/** What an armed fault does to one API call. */
export type CallFaultAction =
  { readonly action: 'error'; readonly code: string; readonly params: readonly string[] } | { readonly action: 'drop' }

/** The faults that apply to one API call: a delay first, then maybe an action. */
export interface CallFaultPlan {
  readonly delayMs: number
  readonly then: CallFaultAction | undefined
}

const FAULT_KINDS = new Set(['error', 'latency', 'drop', 'data-path'])

/** Throws a one-line `TypeError` naming what is wrong with a fault description. */
export function validateFault(value: unknown): LabFault {
  if (typeof value !== 'object' || value === null) throw new TypeError('a lab fault must be an object')
  const fault = value as Record<string, unknown>
  if (typeof fault['kind'] !== 'string' || !FAULT_KINDS.has(fault['kind']))
    throw new TypeError(`lab fault kind must be one of ${[...FAULT_KINDS].join(', ')}`)
  if (
    fault['nth'] !== undefined &&
    (typeof fault['nth'] !== 'number' || !Number.isInteger(fault['nth']) || fault['nth'] < 1)
  )
    throw new TypeError('lab fault nth must be a positive integer')
  switch (fault['kind']) {
    case 'error':
      if (typeof fault['method'] !== 'string' || typeof fault['code'] !== 'string')
        throw new TypeError('an error fault needs method and code')
      if (
        fault['params'] !== undefined &&
        !(Array.isArray(fault['params']) && fault['params'].every(p => typeof p === 'string'))
      )
        throw new TypeError('error fault params must be strings')
      break
    case 'latency':
      if (typeof fault['ms'] !== 'number' || fault['ms'] < 0) throw new TypeError('a latency fault needs ms >= 0')
      break
    case 'drop':
      if (typeof fault['method'] !== 'string') throw new TypeError('a drop fault needs method')
      break
    case 'data-path':
      if (fault['direction'] !== 'export' && fault['direction'] !== 'import')
        throw new TypeError('a data-path fault needs direction export or import')
      break
  }
  return value as LabFault
}

/** The faults armed on one pool, and how many calls of each method it has seen. */
export class FaultTable {
  #armed: Armed[] = []
  #calls = new Map<string, number>()

  add(fault: LabFault): void {
    this.#armed.push({ fault: validateFault(fault), seen: 0, spent: false })
  }

  clear(): void {
    this.#armed = []
  }

  list(): LabFault[] {
    return this.#armed.filter(armed => !armed.spent).map(armed => armed.fault)
  }

  /**
   * Calls per method (wire name without `Async.`) since the start or the last reset: what a
   * fault matrix arms a fault on, each method a client made.
   */
  callCounts(): Record<string, number> {
    return Object.fromEntries(this.#calls)
  }

  resetCallCounts(): void {
    this.#calls.clear()
  }

  /** What to do with a call of `method` (counts the call against every matching fault). */
  planCall(method: string): CallFaultPlan {
    this.#calls.set(method, (this.#calls.get(method) ?? 0) + 1)
    let delayMs = 0
    let then: CallFaultAction | undefined
    for (const armed of this.#armed) {
      const { fault } = armed
      if (armed.spent || fault.kind === 'data-path') continue
      if (fault.method !== undefined && fault.method !== method) continue
      if (!this.#fires(armed)) continue
      if (fault.kind === 'latency') delayMs += fault.ms
      else if (then === undefined)
        then =
          fault.kind === 'drop' ? { action: 'drop' } : { action: 'error', code: fault.code, params: fault.params ?? [] }
    }
    return { delayMs, then }
  }

  /**
   * The data-path fault for this transfer, if one fires (the first that does). Every matching
   * fault counts the transfer, as {@link planCall} counts a call against every fault: a fault
   * armed for the 3rd transfer fires on the 3rd even when another fired on the 2nd.
   */
  takeDataPathFault(direction: DataPathKind, vdiUuid: string): DataPathFault | undefined {
    let out: { -readonly [K in keyof DataPathFault]: DataPathFault[K] } | undefined
    for (const armed of this.#armed) {
      const { fault } = armed
      if (armed.spent || fault.kind !== 'data-path' || fault.direction !== direction) continue
      if (fault.vdi !== undefined && fault.vdi !== vdiUuid) continue
      if (!this.#fires(armed) || out !== undefined) continue
      out = {}
      if (fault.cutAfterBytes !== undefined) out.cutAfterBytes = fault.cutAfterBytes
      if (fault.failTask !== undefined) out.failTask = fault.failTask
      if (fault.bytesPerSecond !== undefined) out.bytesPerSecond = fault.bytesPerSecond
    }
    return out
  }

  #fires(armed: Armed): boolean {
    armed.seen++
    if (armed.fault.nth === undefined) return true
    if (armed.seen === armed.fault.nth) {
      armed.spent = true
      return true
    }
    return false
  }
}
