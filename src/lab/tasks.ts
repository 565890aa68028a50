/**
 * Tasks (reference §4.1): pending → success | failure | cancelled, exactly once; the result is
 * the XML-RPC encoding of the return value as a string, even for JSON-RPC callers.
 */
import type { LabTaskHandle } from './views.js'
import { newRef, NULL_REF, type Database } from './db/database.js'
import { xapiFault } from './fault.js'
import { formatXapiDate, EPOCH } from './wire/values.js'

/** A pending task as the code that runs it sees it. */
export interface TaskHandle extends LabTaskHandle {
  /** Throws `TASK_CANCELLED [ref]` once someone called `task.cancel`. */
  checkCancelled(): void
}

/** The tasks of one pool. */
export class TaskManager {
  readonly #db: Database
  readonly #hostRef: () => string
  readonly #destroyRequested = new Set<string>()

  constructor(db: Database, hostRef: () => string) {
    this.#db = db
    this.#hostRef = hostRef
  }

  create(label: string, description: string, options: { subtaskOf?: string; cancellable?: boolean } = {}): TaskHandle {
    const ref = this.#db.create('task', {
      name_label: label,
      name_description: description,
      created: formatXapiDate(new Date()),
      finished: EPOCH,
      status: 'pending',
      progress: 0,
      resident_on: this.#hostRef(),
      subtask_of: options.subtaskOf ?? NULL_REF,
      allowed_operations: options.cancellable === false ? [] : ['cancel'],
    })
    return this.#handle(ref)
  }

  /** The handle of a pending task, or undefined if `ref` names no pending task. */
  pending(ref: string): TaskHandle | undefined {
    const record = this.#db.find('task', ref)
    if (record === undefined || record['status'] !== 'pending') return undefined
    return this.#handle(ref)
  }

  /** `task.cancel`: recorded in current_operations; the running operation notices it. */
  cancel(ref: string): void {
    const record = this.#db.get('task', ref)
    if (record['status'] !== 'pending') {
      throw xapiFault('OPERATION_NOT_ALLOWED', `task ${ref} is not pending`)
    }
    const ops = record['current_operations'] as Readonly<Record<string, string>>
    this.#db.update('task', ref, { current_operations: { ...ops, [newRef()]: 'cancel' } })
  }

  /** `task.destroy`: immediate for a finished task, a recorded request for a pending one. */
  destroy(ref: string): void {
    const record = this.#db.get('task', ref)
    if (record['status'] === 'pending') {
      this.#destroyRequested.add(ref)
      const ops = record['current_operations'] as Readonly<Record<string, string>>
      this.#db.update('task', ref, { current_operations: { ...ops, [newRef()]: 'destroy' } })
      return
    }
    this.#db.destroy('task', ref)
  }

  /** Tasks left pending by a lab that stopped: they can never finish, so fail them. */
  failOrphans(): void {
    for (const [ref, record] of [...this.#db.all('task')]) {
      if (record['status'] === 'pending')
        this.#complete(ref, 'failure', '', ['INTERNAL_ERROR', 'the lab restarted while this task was pending'])
    }
  }

  #handle(ref: string): TaskHandle {
    const db = this.#db
    const isCancelRequested = (): boolean => {
      const record = db.find('task', ref)
      return (
        record !== undefined &&
        Object.values(record['current_operations'] as Readonly<Record<string, string>>).includes('cancel')
      )
    }
    return {
      ref,
      setProgress: (progress: number) => {
        const record = db.find('task', ref)
        if (record === undefined || record['status'] !== 'pending') return
        db.update('task', ref, { progress: Math.min(1, Math.max(0, progress)) })
      },
      succeed: (result: string) => this.#complete(ref, 'success', result, []),
      fail: (code: string, params: readonly string[]) =>
        this.#complete(ref, code === 'TASK_CANCELLED' ? 'cancelled' : 'failure', '', [code, ...params]),
      get cancelRequested() {
        return isCancelRequested()
      },
      checkCancelled: () => {
        if (isCancelRequested()) throw xapiFault('TASK_CANCELLED', ref)
      },
    }
  }

  #complete(
    ref: string,
    status: 'success' | 'failure' | 'cancelled',
    result: string,
    errorInfo: readonly string[],
  ): void {
    const record = this.#db.find('task', ref)
    // Status changes only out of pending; a second completion is ignored.
    if (record === undefined || record['status'] !== 'pending') return
    this.#db.update('task', ref, {
      status,
      result,
      error_info: errorInfo,
      progress: 1,
      finished: formatXapiDate(new Date()),
      allowed_operations: [],
      current_operations: {},
    })
    if (this.#destroyRequested.delete(ref)) this.#db.destroy('task', ref)
  }
}
