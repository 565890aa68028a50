/**
 * Undo actions registered as objects are created (a cloned VDI, a half-built replica VM) and
 * run in reverse order when a pass fails or is aborted; `commit()` forgets them on success.
 * A small stand-in for `AsyncDisposableStack`, which Node 20 lacks.
 */
export interface CleanupFailure {
  readonly label: string
  readonly error: unknown
}

export class CleanupStack {
  #actions: { label: string; run: () => Promise<void> }[] = []

  /** Registers an undo action; `label` names the object for error reports. */
  defer(label: string, run: () => Promise<void>): void {
    this.#actions.push({ label, run })
  }

  get size(): number {
    return this.#actions.length
  }

  /** Success: nothing will be undone. */
  commit(): void {
    this.#actions = []
  }

  /**
   * Runs every action, newest first, even when some fail (one leftover must not keep the
   * others alive); resolves to the failures.
   */
  async unwind(): Promise<CleanupFailure[]> {
    const failures: CleanupFailure[] = []
    const actions = this.#actions.reverse()
    this.#actions = []
    for (const action of actions) {
      try {
        await action.run()
      } catch (error) {
        failures.push({ label: action.label, error })
      }
    }
    return failures
  }
}
