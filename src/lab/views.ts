/**
 * What the pool shares with its HTTP data paths: the view of a VDI and of a task a transfer
 * runs in, and the faults a transfer can be given. A leaf module: the pool, its task manager and
 * fault table, the HTTP handlers and the XVA import all speak these shapes, and none of them has
 * to import another for it.
 */

/** A VDI as the disk handlers see it. */
export interface LabVdiView {
  readonly ref: string
  readonly uuid: string
  /** id of the disk in the pool's disk store */
  readonly diskId: string
  readonly srRef: string
  readonly virtualSize: number
}

/** A task the handler runs inside: the caller's `task_id`, or one the server created. */
export interface LabTaskHandle {
  readonly ref: string
  /** 0.0 – 1.0; emits a `mod` event on the task */
  setProgress(progress: number): void
  /** `result` is the XML-RPC encoding of the value, e.g. `<value>OpaqueRef:…</value>`, or `""` */
  succeed(result: string): void
  fail(code: string, params: readonly string[]): void
  /** true once someone called `task.cancel` on it */
  readonly cancelRequested: boolean
}

/** A fault the lab applies to one transfer (from the spec or the control API). */
export interface DataPathFault {
  /** close the connection after this many body bytes */
  readonly cutAfterBytes?: number
  /** let the bytes go through but fail the task with this error (e.g. `['VDI_IO_ERROR', 'Device I/O errors']`) */
  readonly failTask?: readonly string[]
  /** throttle the body to this many bytes per second */
  readonly bytesPerSecond?: number
}

export type DataPathKind = 'export' | 'import'
