/**
 * Waits for XAPI tasks to leave `pending`, through `event.from` as XAPI intends (and as
 * `xen-api` does): one loop per client, running only while someone waits, subscribed to the
 * `task` class.
 *
 * An `event.from` token is a database generation: any later call with it returns every task
 * created or changed since (a task made after the token comes as an `add` with its record as it
 * is now, settled or not). So the token of the last answer is kept when the loop stops, and the
 * next loop goes on from it; the tokens form one chain until a call fails (EVENTS_LOST, a
 * re-login, another coordinator…), and the chain starts over with `event.inject`. A task made by
 * a call sent while the chain held a token (the client marks `Async.*` and `task.create` calls:
 * {@link TaskWatcher.mark}) is covered by it: its events reach the loop, so it needs no direct
 * read. Every task event seen is remembered (latest record, bounded), for a waiter that comes
 * after its task's events were taken in. Any other task is read once with `task.get_record`,
 * after a token was taken, so a task that completed before the watch is never missed.
 */
import { AbortedError, OperationError, isXapiError } from '../errors.js'
import { normaliseRecord } from './normalise-record.js'
import type { Ref, TaskRecord } from './types.js'

/** What the watcher needs from the client. */
export interface TaskWatcherHost {
  call<T = unknown>(method: string, args?: readonly unknown[], options?: { timeoutMs?: number }): Promise<T>
  readonly poolRef: Ref<'pool'>
  /** the coordinator answering: a token is a generation of its database, meaningless elsewhere */
  readonly url: string
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

/** A point in a token chain: a task made after it is covered by the chain (see {@link TaskWatcher.mark}). */
export type ChainMark = number & { readonly chainMark: true }

// Seconds, with a fraction so the XML-RPC transport sends a <double> as XAPI expects. Short
// enough that a loop nobody needs any more ends soon; close() wakes it at once anyway.
const EVENT_FROM_TIMEOUT_S = 10.1

const UNSEEN_TIMEOUT_S = 1.1

/** How many failed event.from calls in a row before the waiters get the error. */
const MAX_CONSECUTIVE_FAILURES = 3

/**
 * A token unused this long starts a new chain: its answer would carry every task change of the
 * pool since, and a long-lived process should not depend on how long a host honours old tokens.
 */
const TOKEN_IDLE_MS = 5 * 60_000

/** Task records remembered from events, and task refs remembered as marked or deleted (oldest dropped first). */
const REMEMBERED = 512

export class TaskWatcher {
  readonly #host: TaskWatcherHost
  readonly #waiters = new Map<string, Set<Waiter>>()
  #loop: Promise<void> | undefined
  #closed = false

  /** the chain's latest token, kept between loops; undefined: none (a new chain starts with event.inject) */
  #token: string | undefined
  /** when #token was answered, and by which coordinator */
  #tokenAt = 0
  #tokenUrl = ''
  /** which chain: bumped whenever continuity is lost, so older marks cover nothing */
  #chain = 0
  /** the latest record of each task seen in events of the current chain */
  readonly #seen = new Map<string, TaskRecord>()
  /** tasks deleted in the current chain (a 'del' seen) */
  readonly #deleted = new Set<string>()
  /** tasks made by a marked call, and the chain that covered the call */
  readonly #marked = new Map<string, ChainMark>()
  /** event.from calls sent so far */
  #sent = 0
  /**
   * Covered waiters whose task no event has shown yet, with the #sent at their watch: an answer
   * to a call sent after that must show it (it was created after the chain's token), unless
   * it was created and deleted in between or forgotten; then it is read.
   */
  readonly #unseen = new Map<string, number>()
  /** waiters that came while there was no token: read once the loop has one */
  readonly #unchecked = new Set<string>()
  #priming: Promise<void> | undefined

  constructor(host: TaskWatcherHost) {
    this.#host = host
  }

  /**
   * Call right before sending a call that creates a task (`Async.*`, `task.create`): when the
   * chain holds a token then, the task is created after it and its events will reach the loop.
   * Undefined when there is no usable token.
   */
  mark(): ChainMark | undefined {
    return this.#usableToken() ? (this.#chain as ChainMark) : undefined
  }

  /** Records that `ref` was made by a call sent at `mark`. */
  created(ref: string, mark: ChainMark | undefined): void {
    if (mark === undefined) return
    this.#marked.set(ref, mark)
    trim(this.#marked)
  }

  /**
   * Takes a token if the chain has none, so that the task of the call about to be sent is
   * covered (one `event.inject` instead of an inject and a read after it). Never fails.
   */
  async prime(): Promise<void> {
    if (this.#closed || this.#usableToken() || this.#loop !== undefined) return
    this.#priming ??= (async () => {
      try {
        await this.#newChain()
      } catch {
        // the watch falls back to a read; the call itself does not depend on this
      } finally {
        this.#priming = undefined
      }
    })()
    await this.#priming
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
      this.#start(ref)
      this.#ensureLoop()
    })
  }

  /** What a new waiter needs: nothing (settled or covered), a read, or the loop's read after its inject. */
  #start(ref: string): void {
    const covered = this.#usableToken() && this.#marked.get(ref) === this.#chain
    if (covered) {
      const seen = this.#seen.get(ref)
      if (seen !== undefined) this.#settle(ref, seen)
      else if (this.#deleted.has(ref)) this.#rejectRef(ref, destroyed(ref))
      else if (!this.#unseen.has(ref)) this.#unseen.set(ref, this.#sent)
      return
    }
    // Read after a token was taken, so that every change after the read reaches the loop.
    if (this.#usableToken()) void this.#check(ref)
    else this.#unchecked.add(ref)
  }

  #ensureLoop(): void {
    if (this.#waiters.size === 0) return
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
    await this.#priming
    const loop = this.#loop
    if (loop !== undefined) {
      // A change on the pool object ends the loop's long poll now rather than at its timeout.
      await this.#host.call('event.inject', ['pool', this.#host.poolRef]).catch(() => undefined)
      await loop
    }
  }

  #usableToken(): boolean {
    return this.#token !== undefined && this.#tokenUrl === this.#host.url && Date.now() - this.#tokenAt < TOKEN_IDLE_MS
  }

  /** Forgets the chain and starts another with a fresh token. */
  async #newChain(): Promise<void> {
    this.#token = undefined
    this.#chain++
    this.#seen.clear()
    this.#deleted.clear()
    this.#unseen.clear()
    const url = this.#host.url
    // The token of an injected change on the pool: every task change after it reaches us.
    const token = await this.#host.call<string>('event.inject', ['pool', this.#host.poolRef])
    this.#setToken(token, url)
  }

  #setToken(token: string, url: string): void {
    this.#token = token
    this.#tokenAt = Date.now()
    this.#tokenUrl = url
  }

  #remove(ref: string, waiter: Waiter): void {
    const set = this.#waiters.get(ref)
    if (set === undefined) return
    set.delete(waiter)
    if (set.size === 0) this.#forgetWaiters(ref)
  }

  #forgetWaiters(ref: string): void {
    this.#waiters.delete(ref)
    this.#unseen.delete(ref)
    this.#unchecked.delete(ref)
  }

  #settle(ref: string, record: TaskRecord): void {
    if (record.status === 'pending' || record.status === 'cancelling') return
    const set = this.#waiters.get(ref)
    if (set === undefined) return
    this.#forgetWaiters(ref)
    for (const waiter of set) waiter.resolve(record)
  }

  #rejectRef(ref: string, error: Error): void {
    const set = this.#waiters.get(ref)
    if (set === undefined) return
    this.#forgetWaiters(ref)
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
    let failures = 0
    while (this.#waiters.size > 0 && !this.#closed) {
      try {
        await this.#priming
        if (!this.#usableToken()) {
          await this.#newChain()
          // Tasks made before this token are read once; later changes reach the loop.
          this.#unchecked.clear()
          await Promise.all([...this.#waiters.keys()].map(ref => this.#check(ref)))
          continue
        }
        for (const ref of [...this.#unchecked]) {
          this.#unchecked.delete(ref)
          void this.#check(ref)
        }
        const url = this.#host.url
        const sent = ++this.#sent
        // A task that an answer must show soon (see #unseen) is waited for only briefly: if it
        // was created and deleted since the token, no event will ever show it.
        const timeout = this.#unseen.size > 0 ? UNSEEN_TIMEOUT_S : EVENT_FROM_TIMEOUT_S
        const result = await this.#host.call<EventFromResult>('event.from', [['task', 'pool'], this.#token, timeout], {
          timeoutMs: (timeout + 30) * 1000,
        })
        failures = 0
        this.#setToken(result.token, url)
        for (const event of result.events) {
          if (event.class !== 'task') continue
          if (event.operation === 'del') {
            this.#seen.delete(event.ref)
            this.#deleted.add(event.ref)
            trim(this.#deleted)
            this.#rejectRef(event.ref, destroyed(event.ref))
          } else if (event.snapshot !== undefined) {
            const record = normaliseRecord('task', event.snapshot)
            // re-inserted, so the oldest entries are the ones dropped
            this.#seen.delete(event.ref)
            this.#seen.set(event.ref, record)
            trim(this.#seen)
            this.#unseen.delete(event.ref)
            this.#settle(event.ref, record)
          }
        }
        for (const [ref, since] of [...this.#unseen]) {
          if (since >= sent) continue
          // an answer to a call sent after the watch did not show the task: read it
          this.#unseen.delete(ref)
          if (this.#waiters.has(ref)) void this.#check(ref)
        }
      } catch (error) {
        this.#token = undefined
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

/** Drops the oldest entries of a Map or Set past {@link REMEMBERED}. */
function trim(collection: Map<string, unknown> | Set<string>): void {
  for (const key of collection.keys()) {
    if (collection.size <= REMEMBERED) return
    collection.delete(key)
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
