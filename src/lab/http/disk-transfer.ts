/**
 * What the data paths (`/export_raw_vdi`, `/import_raw_vdi`, `/export`, `/import`) share: query
 * and cookie parsing, the session, the early answers (401, 302, refusals that fail the task),
 * and the metering of the body (progress, the data-path faults, task cancellation).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { DataPathFault, DiskHandlerContext, LabTaskHandle, LabVdiView } from './types.js'

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
  return {
    path: url.pathname,
    query: url.searchParams,
    taskId: url.searchParams.get('task_id') ?? cookie(req, 'task_id'),
  }
}

/** What a data path's handler works with once its session is checked. */
export interface SessionRequest {
  readonly query: URLSearchParams
  /**
   * the caller's task (`task_id`), else a new one labelled for the handler; undefined when
   * `task_id` names no task. A closure, not a method: handlers destructure it.
   */
  readonly openTask: () => LabTaskHandle | undefined
}

/**
 * The opening and closing every data path shares: parse the URL, check the session (401
 * without one, the caller's task untouched), run `handle`, then log out a temporary session
 * whatever happened.
 */
export async function withSession(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: Pick<DiskHandlerContext, 'authenticate' | 'openTask'>,
  taskLabel: string,
  handle: (request: SessionRequest) => Promise<void>,
): Promise<void> {
  const { query, taskId } = parseDiskRequest(req)
  const session = await ctx.authenticate(req, query)
  if (session === undefined) return unauthorized(res)
  try {
    await handle({ query, openTask: () => ctx.openTask(taskId, taskLabel, session.sessionRef) })
  } finally {
    session.release()
  }
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
export function refuse(
  res: ServerResponse,
  status: number,
  task: LabTaskHandle | undefined,
  error: readonly string[],
): void {
  const [code, ...params] = error
  if (task !== undefined && code !== undefined) task.fail(code, params)
  answer(res, status, task === undefined ? {} : { 'task-id': task.ref })
}

/** The error `VDI` lookups fail with: a UUID-shaped name is a uuid, anything else a ref. */
export function vdiNotFound(name: string): string[] {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(name)
    ? ['UUID_INVALID', 'VDI', name]
    : ['HANDLE_INVALID', 'VDI', name]
}

/**
 * The VDI a raw-VDI path names and the task it runs in, or undefined once answered: an unknown
 * VDI is a 404 that fails the task, a VDI on another host's storage a 302 (task untouched), a
 * `task_id` that names no pending task a bare 404.
 */
export function vdiAndTask(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: Pick<DiskHandlerContext, 'lookupVdi' | 'redirectFor'>,
  vdiName: string,
  openTask: () => LabTaskHandle | undefined,
): { vdi: LabVdiView; task: LabTaskHandle } | undefined {
  const vdi = ctx.lookupVdi(vdiName)
  if (vdi === undefined) {
    refuse(res, 404, openTask(), vdiNotFound(vdiName))
    return undefined
  }
  const elsewhere = ctx.redirectFor(vdi)
  if (elsewhere !== undefined) {
    redirect(res, elsewhere, req)
    return undefined
  }
  const task = openTask()
  if (task === undefined) {
    refuse(res, 404, undefined, [])
    return undefined
  }
  return { vdi, task }
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
      if (fault?.bytesPerSecond !== undefined && piece.length > THROTTLE_PIECE)
        piece = piece.subarray(0, THROTTLE_PIECE)
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

/**
 * The XVA chunk loop's hooks into the task (export and import alike): {@link TaskCancelled}
 * before a chunk once the task is cancelled, and integer-percent progress of `total` bytes,
 * reported only when it moves up (100 at once when there is nothing to move).
 */
export function chunkTaskHooks(
  task: LabTaskHandle,
  total: number,
): { beforeChunk(): void; onProgress(covered: number): void } {
  let percent = 0
  return {
    beforeChunk: () => {
      if (task.cancelRequested) throw new TaskCancelled(task.ref)
    },
    onProgress: covered => {
      const now = total > 0 ? Math.floor((covered * 100) / total) : 100
      if (now > percent) {
        percent = now
        task.setProgress(now / 100)
      }
    },
  }
}

/** How much of a request body {@link requestBody} queues before it stops reading the socket. */
const BODY_QUEUE_LIMIT = 256 * 1024

/**
 * The request body as an async iterable that keeps every byte the client sent, even when it
 * closes its side right after the last one (the JS client's 1 PiB mode does; so may any
 * client after an exact-length body). Node's HTTP server destroys a request whose response is
 * unfinished when the socket ends, dropping what is still buffered in it; XAPI instead reads
 * everything that arrived. So bytes move out of the request as soon as they are parsed, into a
 * queue bounded by pausing the socket itself (the request no longer resumes it on its own).
 */
export function requestBody(req: IncomingMessage): AsyncIterable<Buffer> {
  const socket = req.socket
  const queue: Buffer[] = []
  let queued = 0
  let ended = false
  let failure: Error | undefined
  let wake: (() => void) | undefined
  const notify = (): void => {
    const resolve = wake
    wake = undefined
    resolve?.()
  }
  // IncomingMessage#_read resumes the socket whenever the request is drained; we pace it instead
  ;(req as unknown as { _read: () => void })._read = () => undefined
  req.on('data', (chunk: Buffer) => {
    queue.push(chunk)
    queued += chunk.length
    if (queued >= BODY_QUEUE_LIMIT) socket.pause()
    notify()
  })
  req.on('end', () => {
    ended = true
    notify()
  })
  req.on('error', (error: Error) => {
    failure ??= error
    notify()
  })
  req.on('close', () => {
    if (!ended) failure ??= new Error('request closed before its body ended')
    notify()
  })
  socket.resume()
  return {
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          const chunk = queue.shift()
          if (chunk !== undefined) {
            queued -= chunk.length
            if (queued < BODY_QUEUE_LIMIT / 2 && socket.isPaused()) socket.resume()
            yield chunk
            continue
          }
          if (failure !== undefined) throw failure
          if (ended) return
          await new Promise<void>(resolve => {
            wake = resolve
          })
        }
      } finally {
        queue.length = 0
      }
    },
  }
}
