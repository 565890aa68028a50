/**
 * Whole-VM XVA transfers (reference §5.5): `GET /export` of a VM (or snapshot) and `PUT /import`
 * of an XVA onto an SR, each inside a task we create and watch, as `xe vm-export` / `vm-import`
 * do. As for disks (`transfer.ts`), a transfer succeeds only when every byte went through AND
 * the task succeeded, every response body is consumed or destroyed, and an upload always
 * carries its exact Content-Length (XAPI takes no chunked bodies).
 */
import type { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import { finished, pipeline } from 'node:stream/promises'
import { AbortedError, OperationError, XenCrError } from '../errors.js'
import type { XapiClient } from './client.js'
import {
  MAX_REDIRECTS,
  awaitResponse,
  describeUrl,
  discard,
  drain,
  isRedirect,
  openRequest,
  redirectTarget,
} from './http-resource.js'
import { taskOutcome } from './task-outcome.js'
import { watchLater } from './task.js'
import { TransferMeter, type TransferProgress } from './transfer-meter.js'
import type { Ref, TaskRecord } from './types.js'

export interface XvaTransferOptions {
  readonly signal?: AbortSignal
  readonly onProgress?: (progress: TransferProgress) => void
}

function dataUrl(client: XapiClient, path: string, query: Record<string, string>): URL {
  const url = new URL(path, client.url)
  url.searchParams.set('session_id', client.sessionId)
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v)
  return url
}

function ok(res: IncomingMessage): boolean {
  const status = res.statusCode ?? 0
  return status >= 200 && status < 300
}

function statusError(res: IncomingMessage, url: URL, what: string): OperationError {
  return new OperationError(
    'TRANSFER_HTTP_STATUS',
    `${what}: ${describeUrl(url)} answered HTTP ${res.statusCode ?? 0}; check the VM, the SR and the session`,
  )
}

/** The task's verdict once it settles; cancels and destroys it. */
async function settle(
  client: XapiClient,
  task: Ref<'task'>,
  settled: () => Promise<TaskRecord>,
  method: string,
): Promise<unknown> {
  const record = await settled()
  await client.call('task.destroy', [task]).catch(() => undefined)
  return taskOutcome(record, method)
}

/** A failed transfer: the task's own error when it reports one (e.g. `IMPORT_ERROR`), else `error`. */
async function failure(
  client: XapiClient,
  task: Ref<'task'>,
  settled: () => Promise<TaskRecord>,
  error: unknown,
  method: string,
  what: string,
): Promise<Error> {
  if (error instanceof AbortedError || (error as { name?: string } | null)?.name === 'AbortError') {
    void client.call('task.cancel', [task]).catch(() => undefined)
    return new AbortedError(`${what} aborted`)
  }
  // the task usually says why within moments (e.g. IMPORT_ERROR); its error is the precise one
  const record = await Promise.race([
    settled().catch(() => undefined),
    new Promise<undefined>(resolve => setTimeout(() => resolve(undefined), 2_000).unref()),
  ])
  void client.call(record === undefined ? 'task.cancel' : 'task.destroy', [task]).catch(() => undefined)
  if (record !== undefined && record.status !== 'success' && record.status !== 'pending') {
    try {
      taskOutcome(record, method)
    } catch (taskError) {
      return taskError as Error
    }
  }
  if (error instanceof XenCrError) return error
  return new OperationError(
    'TRANSFER_INTERRUPTED',
    `${what} was interrupted (${error instanceof Error ? error.message : String(error)}); run it again`,
  )
}

/**
 * Starts `GET /export` of `vm` (a VM or snapshot) as an uncompressed XVA. `done` resolves once
 * the consumer read the whole stream AND the export task succeeded.
 */
export async function exportVmXva(
  client: XapiClient,
  vm: Ref<'VM'>,
  options: XvaTransferOptions = {},
): Promise<{ stream: Readable; done: Promise<void> }> {
  const { signal } = options
  const what = `XVA export of VM ${vm}`
  const opts = signal === undefined ? {} : { signal }
  const task = await client.call<Ref<'task'>>('task.create', [`xen-cr: export VM ${vm} as XVA`, ''], opts)
  const settled = watchLater(client, task, opts)
  let url = dataUrl(client, '/export/', { task_id: task, ref: vm, use_compression: 'false' })
  let res: IncomingMessage
  try {
    for (let redirects = 0; ; redirects++) {
      const req = openRequest(url, { method: 'GET', tls: client.tls, ...opts })
      const response = awaitResponse(req, url)
      req.end()
      res = await response
      if (!isRedirect(res)) break
      discard(res)
      if (redirects >= MAX_REDIRECTS)
        throw new OperationError(
          'TRANSFER_TOO_MANY_REDIRECTS',
          `${describeUrl(url)}: more than ${MAX_REDIRECTS} redirects`,
        )
      url = redirectTarget(res, url)
    }
    if (!ok(res)) {
      discard(res)
      throw statusError(res, url, what)
    }
  } catch (error) {
    throw await failure(client, task, settled, error, 'GET /export', what)
  }
  const meter = new TransferMeter({
    what: `${what} from ${describeUrl(url)}`,
    rejectEmbeddedHttp: true,
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
  })
  const piped = pipeline(res, meter, opts)
  piped.catch(() => undefined)
  const done = (async (): Promise<void> => {
    try {
      await Promise.all([piped, finished(meter)])
    } catch (error) {
      throw await failure(client, task, settled, error, 'GET /export', what)
    }
    await settle(client, task, settled, 'GET /export')
  })()
  done.catch(() => undefined)
  return { stream: meter, done }
}

/**
 * `PUT /import` of an XVA of exactly `length` bytes onto `sr`; `open` gives the body, and is
 * called again if the host redirects (a body can be sent only once). Resolves with the refs
 * of the imported VMs (the task's result).
 */
export async function importVmXva(
  client: XapiClient,
  open: () => Readable,
  options: XvaTransferOptions & { readonly sr: Ref<'SR'>; readonly length: number },
): Promise<{ vms: Ref<'VM'>[] }> {
  const { signal } = options
  const what = `XVA import onto SR ${options.sr}`
  const opts = signal === undefined ? {} : { signal }
  const task = await client.call<Ref<'task'>>('task.create', [`xen-cr: import XVA onto SR ${options.sr}`, ''], opts)
  const settled = watchLater(client, task, opts)
  let url = dataUrl(client, '/import/', { task_id: task, sr_id: options.sr })
  try {
    for (let redirects = 0; ; redirects++) {
      const req = openRequest(url, {
        method: 'PUT',
        headers: { 'content-length': String(options.length), 'content-type': 'application/octet-stream' },
        tls: client.tls,
        ...opts,
      })
      const answered = awaitResponse(req, url)
      answered.catch(() => undefined)
      const body = open()
      const meter = new TransferMeter({
        what: `${what} at ${describeUrl(url)}`,
        expected: options.length,
        ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      })
      const sent = pipeline(body, meter, req, opts)
      sent.catch(() => undefined)
      const res = await answered
      if (isRedirect(res)) {
        // XAPI answers a redirect before reading the body: stop sending, go where it says.
        discard(res)
        body.destroy()
        req.destroy()
        if (redirects >= MAX_REDIRECTS)
          throw new OperationError(
            'TRANSFER_TOO_MANY_REDIRECTS',
            `${describeUrl(url)}: more than ${MAX_REDIRECTS} redirects`,
          )
        url = redirectTarget(res, url)
        continue
      }
      if (!ok(res)) {
        discard(res)
        body.destroy()
        throw statusError(res, url, what)
      }
      // XAPI sends 200 before reading the body; the import's outcome is the task's.
      await Promise.all([sent, drain(res)])
      break
    }
  } catch (error) {
    throw await failure(client, task, settled, error, 'PUT /import', what)
  }
  const result = await settle(client, task, settled, 'PUT /import')
  const vms = (Array.isArray(result) ? result : [result]).filter(
    (r): r is Ref<'VM'> => typeof r === 'string' && r.startsWith('OpaqueRef:'),
  )
  if (vms.length === 0)
    throw new OperationError(
      'XVA_IMPORT_NO_VM',
      `${what}: the import task succeeded but named no VM; check the target pool`,
    )
  return { vms }
}
