/**
 * What `/export_raw_vdi` and `/import_raw_vdi` share: query and cookie parsing, the early
 * answers (401, 302, refusals that fail the task), and the metering of the body (progress,
 * the data-path faults, task cancellation).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { DataPathFault, LabTaskHandle } from './types.js'

/** Fails the task as XAPI's transfer helper does for any failure of the data path. */
export function failIo(task: LabTaskHandle): void {
  task.fail('VDI_IO_ERROR', ['Device I/O errors'])
}

export interface DiskRequest {
  readonly path: string
  readonly query: URLSearchParams
  /** `task_id` from the query, else from the cookie */
  readonly taskId: string | undefined
}

export function parseDiskRequest(req: IncomingMessage): DiskRequest {
  const url = new URL(req.url ?? '/', 'http://lab.invalid')
  return { path: url.pathname, query: url.searchParams, taskId: url.searchParams.get('task_id') ?? cookie(req, 'task_id') }
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=')
    if (key === name) return decodeURIComponent(value.join('='))
  }
  return undefined
}

/** Ends the exchange with a header-only answer; the connection closes after it, as XAPI's does. */
export function answer(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, { Connection: 'close', 'Content-Length': '0', ...headers })
  res.end()
}

/** XAPI's answer to a request without a valid session (the caller's task is not failed). */
export function unauthorized(res: ServerResponse): void {
  answer(res, 401, { 'WWW-Authenticate': 'Basic realm="xapi"' })
}

/** 302 to the host that can reach the SR: same path and query, the caller's task untouched. */
export function redirect(res: ServerResponse, baseUrl: string, req: IncomingMessage): void {
  answer(res, 302, { Location: `${baseUrl.replace(/\/$/, '')}${req.url ?? '/'}` })
}

/** A refusal before any byte moved: the status, and the task (if any) failed with `error`. */
export function refuse(res: ServerResponse, status: number, task: LabTaskHandle | undefined, error: readonly string[]): void {
  const [code, ...params] = error
  if (task !== undefined && code !== undefined) task.fail(code, params)
  answer(res, status, task === undefined ? {} : { 'task-id': task.ref })
}

/** The error `VDI` lookups fail with: a UUID-shaped name is a uuid, anything else a ref. */
export function vdiNotFound(name: string): string[] {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(name) ? ['UUID_INVALID', 'VDI', name] : ['HANDLE_INVALID', 'VDI', name]
}

/** Raised inside a transfer when `task.cancel` was called on its task. */
export class TaskCancelled extends Error {
  constructor(readonly taskRef: string) {
    super(`task ${taskRef} was cancelled`)
  }
}

export interface Meter {
  /** body bytes that went through */
  bytes: number
  /** true once the `cutAfterBytes` fault stopped the body */
  cut: boolean
}

/** Throttled bodies move in pieces this big, so the rate is smooth rather than one 2 MiB lump per wait. */
const THROTTLE_PIECE = 64 * 1024

/**
 * Passes `source` through, counting bytes into `meter`, reporting integer-percent progress of
 * `total` to the task, stopping (without error: the caller decides) after `cutAfterBytes`,
 * pacing to `bytesPerSecond`, and throwing {@link TaskCancelled} once the task is cancelled.
 */
export async function* metered(
  source: AsyncIterable<Buffer>,
  options: { task: LabTaskHandle; total: number; fault: DataPathFault | undefined; meter: Meter },
): AsyncGenerator<Buffer> {
  const { task, total, fault, meter } = options
  const started = Date.now()
  let percent = 0
  for await (const chunk of source) {
    let rest = chunk
    while (rest.length > 0) {
      if (task.cancelRequested) throw new TaskCancelled(task.ref)
      let piece = rest
      if (fault?.bytesPerSecond !== undefined && piece.length > THROTTLE_PIECE) piece = piece.subarray(0, THROTTLE_PIECE)
      if (fault?.cutAfterBytes !== undefined && meter.bytes + piece.length >= fault.cutAfterBytes) {
        piece = piece.subarray(0, fault.cutAfterBytes - meter.bytes)
        meter.cut = true
      }
      rest = meter.cut ? Buffer.alloc(0) : rest.subarray(piece.length)
      if (fault?.bytesPerSecond !== undefined && fault.bytesPerSecond > 0) {
        const due = started + ((meter.bytes + piece.length) / fault.bytesPerSecond) * 1000
        const wait = due - Date.now()
        if (wait > 0) await sleep(wait)
      }
      meter.bytes += piece.length
      if (piece.length > 0) yield piece
      const now = total > 0 ? Math.min(100, Math.floor((meter.bytes * 100) / total)) : 0
      if (now > percent) {
        percent = now
        task.setProgress(percent / 100)
      }
      if (meter.cut) return
    }
  }
}
