/**
 * Waits for XAPI tasks to leave `pending`, through `event.from` as XAPI intends (and as
 * `xen-api` does): one loop per client, running only while someone waits, subscribed to the
 * `task` class. Each new waiter also reads its task once, so a task that completed before the
 * loop's token was taken is not missed.
 */
import { AbortedError, OperationError, isXapiError } from '../errors.js'
import { normaliseRecord } from './normalise-record.js'
import type { Ref, TaskRecord } from './types.js'

/** What the watcher needs from the client. */
export interface TaskWatcherHost {
  call<T = unknown>(method: string, args?: readonly unknown[], options?: { timeoutMs?: number }): Promise<T>
  readonly poolRef: Ref<'pool'>
}

interface Waiter {
  resolve(record: TaskRecord): void
  reject(error: Error): void
}

interface EventRecord {
  readonly class: string
  readonly operation: 'add' | 'mod' | 'del'
  readonly ref: string
  readonly snapshot?: unknown
}

interface EventFromResult {
  readonly events: readonly EventRecord[]
  readonly token: string
}

// Seconds, with a fraction so the XML-RPC transport sends a <double> as XAPI expects. Short
// enough that a loop nobody needs any more ends soon; close() wakes it at once anyway.
const EVENT_FROM_TIMEOUT_S = 10.1

/** How many failed event.from calls in a row before the waiters get the error. */
const MAX_CONSECUTIVE_FAILURES = 3

export class TaskWatcher {
  readonly #host: TaskWatcherHost
  readonly #waiters = new Map<string, Set<Waiter>>()
  #loop: Promise<void> | undefined
  #closed = false

  constructor(host: TaskWatcherHost) {
    this.#host = host
  }

  /** Resolves with the task's record once its status is no longer `pending`/`cancelling`. */
  watch(ref: Ref<'task'>, signal?: AbortSignal): Promise<TaskRecord> {
    if (this.#closed) {
      return Promise.reject(new OperationError('CLIENT_CLOSED', `cannot watch task ${ref}: the XAPI client is closed`))
    }
    if (signal?.aborted === true) {
      return Promise.reject(new AbortedError(`waiting for task ${ref} aborted`))
    }
    return new Promise<TaskRecord>((resolve, reject) => {
      const onAbort = (): void => {
        this.#remove(ref, waiter)
        reject(new AbortedError(`waiting for task ${ref} aborted`))
      }
      const waiter: Waiter = {
        resolve: record => {
          signal?.removeEventListener('abort', onAbort)
          resolve(record)
        },
        reject: error => {
          signal?.removeEventListener('abort', onAbort)
          reject(error)
        },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      let set = this.#waiters.get(ref)
      if (set === undefined) {
        set = new Set()
        this.#waiters.set(ref, set)
      }
      set.add(waiter)
      void this.#check(ref)
      this.#ensureLoop()
    })
  }

  #ensureLoop(): void {
    this.#loop ??= this.#run().finally(() => {
      this.#loop = undefined
      // A waiter that arrived while the loop was winding down (it saw none left, then a waiter
      // came in before this ran) needs a new loop, which must clear #loop when it ends too:
      // otherwise every later watch sees a loop that is gone and waits forever.
      if (this.#waiters.size > 0 && !this.#closed) this.#ensureLoop()
    })
  }

  /** Rejects every waiter and stops the loop (waking a pending `event.from`). */
  async close(): Promise<void> {
    this.#closed = true
    this.#rejectAll(new OperationError('CLIENT_CLOSED', 'the XAPI client was closed while waiting for a task'))
    const loop = this.#loop
    if (loop !== undefined) {
      // A change on the pool object ends the loop's long poll now rather than at its timeout.
      await this.#host.call('event.inject', ['pool', this.#host.poolRef]).catch(() => undefined)
      await loop
    }
  }

  #remove(ref: string, waiter: Waiter): void {
    const set = this.#waiters.get(ref)
    if (set === undefined) return
    set.delete(waiter)
    if (set.size === 0) this.#waiters.delete(ref)
  }

  #settle(ref: string, record: TaskRecord): void {
    if (record.status === 'pending' || record.status === 'cancelling') return
    const set = this.#waiters.get(ref)
    if (set === undefined) return
    this.#waiters.delete(ref)
    for (const waiter of set) waiter.resolve(record)
  }

  #rejectRef(ref: string, error: Error): void {
    const set = this.#waiters.get(ref)
    if (set === undefined) return
    this.#waiters.delete(ref)
    for (const waiter of set) waiter.reject(error)
  }

  #rejectAll(error: Error): void {
    for (const ref of [...this.#waiters.keys()]) this.#rejectRef(ref, error)
  }

  async #check(ref: string): Promise<void> {
    try {
      const raw = await this.#host.call('task.get_record', [ref])
      this.#settle(ref, normaliseRecord('task', raw))
    } catch (error) {
      if (isXapiError(error, 'HANDLE_INVALID')) {
        this.#rejectRef(ref, destroyed(ref))
      } else {
        this.#rejectRef(ref, asError(error))
      }
    }
  }

  async #run(): Promise<void> {
    let token: string | undefined
    let failures = 0
    while (this.#waiters.size > 0 && !this.#closed) {
      try {
        if (token === undefined) {
          // The token of an injected change on the pool: every task change after it reaches us.
          token = await this.#host.call<string>('event.inject', ['pool', this.#host.poolRef])
          await Promise.all([...this.#waiters.keys()].map(ref => this.#check(ref)))
          continue
        }
        const result = await this.#host.call<EventFromResult>(
          'event.from',
          [['task', 'pool'], token, EVENT_FROM_TIMEOUT_S],
          {
            timeoutMs: (EVENT_FROM_TIMEOUT_S + 30) * 1000,
          },
        )
        failures = 0
        token = result.token
        for (const event of result.events) {
          if (event.class !== 'task' || !this.#waiters.has(event.ref)) continue
          if (event.operation === 'del') {
            this.#rejectRef(event.ref, destroyed(event.ref))
          } else if (event.snapshot !== undefined) {
            this.#settle(event.ref, normaliseRecord('task', event.snapshot))
          }
        }
      } catch (error) {
        token = undefined
        if (this.#closed) return
        if (++failures >= MAX_CONSECUTIVE_FAILURES || !isXapiError(error)) {
          this.#rejectAll(asError(error))
          return
        }
        // EVENTS_LOST, SESSION_INVALID after a re-login, a token from a restarted host…: start
        // over with a fresh token and a direct read of every watched task.
      }
    }
  }
}

/** The client rejects with its own errors; anything else still reaches a waiter as an Error. */
function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error))
}

function destroyed(ref: string): OperationError {
  return new OperationError(
    'TASK_DESTROYED',
    `task ${ref} was destroyed before it completed; the operation's outcome is unknown, check the objects it was to change`,
  )
}
