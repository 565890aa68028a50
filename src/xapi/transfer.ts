/**
 * Client side of XAPI's disk data paths (reference §5): `GET /export_raw_vdi` and
 * `PUT /import_raw_vdi`, each inside a task we create and watch. A transfer succeeds only when
 * every byte went through AND the task succeeded; a failed task after all bytes is an error, a
 * cut stream is an error, and every response body is consumed or destroyed.
 */
import type { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import { finished, pipeline } from 'node:stream/promises'
import { AbortedError, ConnectionError, OperationError, UsageError, XapiError, XenCrError } from '../errors.js'
import { normaliseVhd } from '../vhd/normalise.js'
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
import { isNetworkErrorCode, isTlsErrorCode } from './map-error.js'
import { taskOutcome } from './task-outcome.js'
import { watchLater } from './task.js'
import { TransferMeter, type TransferProgress } from './transfer-meter.js'
import type { Ref, TaskRecord } from './types.js'
import { writeInBatches } from './write-batching.js'

export type { TransferProgress } from './transfer-meter.js'

/** Options shared by exports and imports. */
export interface TransferOptions {
  readonly signal?: AbortSignal
  readonly onProgress?: (progress: TransferProgress) => void
  /** how long to wait for the task to settle once the bytes went through (default 5 minutes) */
  readonly taskTimeoutMs?: number
  /** the socket's inactivity timeout (default 5 minutes) */
  readonly idleTimeoutMs?: number
}

export interface ExportVdiOptions extends TransferOptions {
  /** an older snapshot of the same disk: the export is a differencing VHD of the changed blocks */
  readonly base?: Ref<'VDI'>
  readonly format: 'vhd' | 'raw'
}

export interface ImportVdiOptions extends TransferOptions {
  readonly format: 'vhd' | 'raw'
  /** raw only, and required there: the exact number of bytes `source` carries */
  readonly length?: number
}

const DEFAULT_TASK_TIMEOUT_MS = 5 * 60_000
const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000
/** After an interrupted transfer, how long the task may take to report why (its error is more precise). */
const TASK_GRACE_MS = 2_000
/** Bound on cancelling and destroying the task of a failed transfer. */
const CLEANUP_TIMEOUT_MS = 10_000
/** How long an import waits for the host's answer to its headers before it sends the body anyway. */
const EARLY_ANSWER_MS = 10_000
/**
 * Failures where the host likely knows better (it cut the connection, or stopped early): the
 * task's error is reported instead. Our own findings (a bad VHD, an abort) are reported as is.
 */
const INTERRUPTIONS = new Set([
  'TRANSFER_INTERRUPTED',
  'TRANSFER_INCOMPLETE',
  'TRANSFER_NO_RESPONSE',
  'TRANSFER_LENGTH_MISMATCH',
  'TRANSFER_HTTP_STATUS',
])

/** What {@link exportVdi} resolves with. */
export interface ExportedVdi {
  /** the body */
  readonly stream: Readable
  /** resolves once the consumer read all of `stream` AND the task succeeded */
  readonly done: Promise<void>
  /** bytes of the body read so far */
  readonly bytes: number
}

/**
 * Starts `GET /export_raw_vdi` of `vdi` (with `base`: the delta since that snapshot). `done`
 * rejects unless every byte was read and the task succeeded (a raw export must be exactly
 * `virtual_size` bytes).
 */
export async function exportVdi(client: XapiClient, vdi: Ref<'VDI'>, options: ExportVdiOptions): Promise<ExportedVdi> {
  const { signal } = options
  const what = `export of VDI ${vdi}`
  throwIfAborted(signal, what)
  const callOptions = signal === undefined ? {} : { signal }
  const total = options.format === 'raw' ? (await client.getRecord('VDI', vdi, callOptions)).virtual_size : undefined
  const task = await createTask(client, `xen-cr: export VDI ${vdi} as ${options.format}`, signal, what)
  const settled = watchLater(client, task, callOptions)

  let res: IncomingMessage
  let url = dataPathUrl(client, '/export_raw_vdi/', {
    task_id: task,
    vdi,
    format: options.format,
    ...(options.base === undefined ? {} : { base: options.base }),
  })
  try {
    for (let redirects = 0; ; redirects++) {
      const req = openRequest(url, requestOptions(client, 'GET', options))
      const response = awaitResponse(req, url)
      req.end()
      res = await response
      if (!isRedirect(res)) break
      // XAPI redirects to the host that sees the VDI's SR; the Location carries the full query.
      discard(res)
      if (redirects >= MAX_REDIRECTS) throw tooManyRedirects(url)
      url = redirectTarget(res, url)
    }
    if (!isSuccess(res)) {
      discard(res)
      throw httpStatusError(res, url, what)
    }
  } catch (error) {
    throw await failureWithTask(client, task, settled, transferError(error, url, what, 'request', signal), what)
  }

  const lengthHeader = res.headers['content-length']
  const expected = lengthHeader === undefined ? total : Number(lengthHeader)
  const meter = new TransferMeter({
    what: `${what} from ${describeUrl(url)}`,
    rejectEmbeddedHttp: true,
    vhd: options.format === 'vhd' && expected === undefined,
    ...(expected === undefined ? {} : { expected }),
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
  })
  const piped = pipeline(res, meter, signal === undefined ? {} : { signal })
  piped.catch(() => undefined)
  const done = (async (): Promise<void> => {
    try {
      await Promise.all([piped, finished(meter)])
    } catch (error) {
      throw await failureWithTask(client, task, settled, transferError(error, url, what, 'body', signal), what)
    }
    await finishTask(client, task, settled, `GET ${url.pathname}`, options)
  })()
  done.catch(() => undefined)
  return {
    stream: meter,
    done,
    get bytes() {
      return meter.bytes
    },
  }
}

/**
 * `PUT /import_raw_vdi` of `source` into `vdi`. A VHD is re-emitted by `normaliseVhd` so the
 * request always carries its exact Content-Length (XAPI refuses chunked bodies); raw needs
 * `length`. A redirect is followed on the answer to the headers, before the body (which can be
 * sent only once) goes out. Resolves when all bytes went through and the task succeeded.
 */
export async function importVdi(
  client: XapiClient,
  vdi: Ref<'VDI'>,
  source: Readable,
  options: ImportVdiOptions,
): Promise<{ bytes: number }> {
  const { signal } = options
  const what = `import into VDI ${vdi}`
  const callOptions = signal === undefined ? {} : { signal }
  let body: Readable
  let length: number
  try {
    throwIfAborted(signal, what)
    if (options.format === 'vhd') {
      const normalised = await normaliseVhd(source, callOptions)
      body = normalised.stream
      length = normalised.length
    } else {
      if (options.length === undefined || !Number.isSafeInteger(options.length) || options.length < 0) {
        throw new UsageError(
          'IMPORT_LENGTH_REQUIRED',
          `${what}: a raw import needs the exact byte length of its source`,
        )
      }
      body = source
      length = options.length
    }
  } catch (error) {
    source.destroy()
    throw error
  }

  const label = `xen-cr: import VDI ${vdi} as ${options.format}`
  let task: Ref<'task'>
  try {
    task = await createTask(client, label, signal, what)
  } catch (error) {
    body.destroy()
    source.destroy()
    throw error
  }
  const settled = watchLater(client, task, callOptions)

  let url = dataPathUrl(client, '/import_raw_vdi/', { vdi, format: options.format })
  url.searchParams.set('task_id', task)
  // until a request is sent, none runs in the task
  let unused = true
  try {
    const headers = { 'content-length': String(length), 'content-type': 'application/octet-stream' }
    // XAPI answers an import before it reads the body: 200, or a 302 to the host that sees the
    // SR (reference §5.1, §5.3). The headers go first and the body only once that answer is in,
    // so a redirect is followed before a byte of the body is spent, with no probe request (and
    // no task of its own). A host that answers only after the body gets it after EARLY_ANSWER_MS.
    let req: ReturnType<typeof openRequest>
    let response: Promise<IncomingMessage>
    for (let redirects = 0; ; redirects++) {
      unused = false
      req = openRequest(url, { ...requestOptions(client, 'PUT', options), headers })
      response = awaitResponse(req, url)
      response.catch(() => undefined)
      req.flushHeaders()
      const early = await raceTimeout(response, EARLY_ANSWER_MS)
      if (early === undefined || isSuccess(early)) break
      req.on('error', () => undefined)
      discard(early)
      req.destroy()
      if (!isRedirect(early)) throw httpStatusError(early, url, what)
      if (redirects >= MAX_REDIRECTS) throw tooManyRedirects(url)
      // the Location carries the whole query, our task_id included (a redirect leaves the task untouched)
      url = redirectTarget(early, url)
      url.searchParams.set('task_id', task)
    }
    const answered = response.then(async res => {
      if (!isSuccess(res)) {
        discard(res)
        throw httpStatusError(res, url, what)
      }
      await drain(res)
    })
    answered.catch(() => undefined)
    // The normaliser emits exactly `length` bytes or errors; a raw source is held to its length
    // here, and a meter reports progress when asked. A VHD without progress goes straight in.
    const stages: Readable[] =
      options.format === 'vhd' && options.onProgress === undefined
        ? [body]
        : [
            body,
            new TransferMeter({
              what: `${what} at ${describeUrl(url)}: the source`,
              expected: length,
              // The source, not the host, broke the length contract: reported as is.
              lengthErrorCode: 'SOURCE_LENGTH_MISMATCH',
              ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
            }),
          ]
    writeInBatches(stages.at(-1) as Readable, req)
    const [sent, answer] = await Promise.allSettled([
      pipeline([...stages, req], signal === undefined ? {} : { signal }),
      answered,
    ])
    // A refusal (401, 404 for chunked…) closes the socket under us: the status is the real news.
    if (
      answer.status === 'rejected' &&
      answer.reason instanceof XenCrError &&
      answer.reason.code === 'TRANSFER_HTTP_STATUS'
    )
      throw answer.reason
    if (sent.status === 'rejected') throw sent.reason
    if (answer.status === 'rejected') throw answer.reason
  } catch (error) {
    body.destroy()
    source.destroy()
    const failure = await failureWithTask(
      client,
      task,
      settled,
      transferError(error, url, what, 'body', signal),
      what,
      unused,
    )
    throw failure
  }
  await finishTask(client, task, settled, `PUT ${url.pathname}`, options)
  return { bytes: length }
}

/**
 * `task.create` for one data-path request. Not cut by an abort: the host makes the task whether
 * or not we wait for its answer, and a task whose ref we never learnt stays pending on the pool
 * for good (no request runs in it, so nothing completes it, and nobody knows it to destroy it).
 * Made after an abort, the task is released at once and the abort reported.
 */
async function createTask(
  client: XapiClient,
  label: string,
  signal: AbortSignal | undefined,
  what: string,
): Promise<Ref<'task'>> {
  const task = await client.call<Ref<'task'>>('task.create', [label, ''])
  if (signal?.aborted === true) {
    await releaseTask(client, task, 'unused')
    throw new AbortedError(`${what} aborted`)
  }
  return task
}

/**
 * Destroys a task of ours (bounded; errors ignored). XAPI only records a destroy of a pending
 * task, and completes a `task.create` task only from a data-path request running in it: a task
 * that is `pending` is cancelled first and given a moment to settle, and one that still has not
 * (no request reached the host, or the host lost it) — or is `unused` — is completed here with
 * `task.set_status` (XAPI 7.5 "Falcon" and later; on older hosts it stays until XAPI collects its session's tasks).
 */
async function releaseTask(
  client: XapiClient,
  task: Ref<'task'>,
  state: 'unused' | 'pending' | 'settled',
): Promise<void> {
  const bounded = { timeoutMs: CLEANUP_TIMEOUT_MS }
  let settled = state === 'settled'
  if (state === 'pending') {
    await client.call('task.cancel', [task], bounded).catch(() => undefined)
    settled =
      (await raceTimeout(
        client.watchTask(task).then(
          () => true,
          () => false,
        ),
        TASK_GRACE_MS,
      )) === true
  }
  if (!settled) await client.call('task.set_status', [task, 'cancelled'], bounded).catch(() => undefined)
  await client.call('task.destroy', [task], bounded).catch(() => undefined)
}

async function finishTask(
  client: XapiClient,
  task: Ref<'task'>,
  settled: () => Promise<TaskRecord>,
  method: string,
  options: TransferOptions,
): Promise<void> {
  const timeoutMs = options.taskTimeoutMs ?? DEFAULT_TASK_TIMEOUT_MS
  let record: TaskRecord | undefined
  try {
    record = await raceTimeout(settled(), timeoutMs)
  } catch (error) {
    // The watch ends with the pass's abort (or the client): the bytes went through, and the
    // task, settled by now or soon, is still ours to destroy (an abort right after the last
    // byte left a finished import task on the pool).
    await releaseTask(client, task, 'pending')
    throw error
  }
  if (record === undefined) {
    await releaseTask(client, task, 'pending')
    throw new OperationError(
      'TASK_NOT_SETTLED',
      `${method}: all bytes went through but task ${task} did not complete within ${timeoutMs} ms; check the host`,
    )
  }
  await client.call('task.destroy', [task]).catch(() => undefined)
  taskOutcome(record, method)
}

/**
 * The error to report for a failed transfer: for an interruption, the task's own failure when
 * it reports one soon (e.g. `VDI_IO_ERROR`), else the transfer error. Either way the task is
 * cancelled (if still pending) and destroyed.
 */
async function failureWithTask(
  client: XapiClient,
  task: Ref<'task'>,
  settled: () => Promise<TaskRecord>,
  error: XenCrError,
  what: string,
  unused = false,
): Promise<XenCrError> {
  if (unused) {
    await releaseTask(client, task, 'unused')
    return error
  }
  const record = INTERRUPTIONS.has(error.code)
    ? await raceTimeout(
        settled().catch(() => undefined),
        TASK_GRACE_MS,
      )
    : undefined
  // Awaited, an abort too, so that no task of ours outlives the failure: in the background it
  // raced the run closing the client (its watch and destroy then failed) and stayed on the pool.
  // Bounded, so that an unreachable pool does not hold the error back for a whole call timeout.
  await releaseTask(client, task, record === undefined ? 'pending' : 'settled')
  if (record !== undefined && record.status === 'failure' && record.error_info[0] !== undefined) {
    const [code, ...params] = record.error_info
    return new XapiError(code, params, what, { cause: error })
  }
  return error
}

function transferError(
  error: unknown,
  url: URL,
  what: string,
  phase: 'request' | 'body',
  signal: AbortSignal | undefined,
): XenCrError {
  if (error instanceof XenCrError) return error
  const where = describeUrl(url)
  const name = error instanceof Error ? error.name : ''
  if (signal?.aborted === true) return new AbortedError(`${what} aborted`)
  // Streams report AbortError also when a consumer destroys them; that is no abort of ours.
  if (name === 'AbortError')
    return new OperationError(
      'TRANSFER_INTERRUPTED',
      `${what} at ${where} stopped: its stream was closed before the end`,
    )
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string' && isTlsErrorCode(code)) {
    return new ConnectionError(
      'POOL_TLS',
      `TLS connection to ${where} failed (${code}); check the host's certificate or allow unauthorized certificates for this pool`,
      {
        url: `${url.protocol}//${url.host}`,
      },
    )
  }
  if (phase === 'request' && typeof code === 'string' && isNetworkErrorCode(code)) {
    return new ConnectionError(
      'POOL_UNREACHABLE',
      `cannot reach ${where} for ${what} (${code}); check that the host is up and reachable from here`,
      {
        url: `${url.protocol}//${url.host}`,
      },
    )
  }
  const detail = typeof code === 'string' ? code : error instanceof Error ? error.message : String(error)
  return new OperationError('TRANSFER_INTERRUPTED', `${what} at ${where} was interrupted (${detail}); run it again`)
}

function httpStatusError(res: IncomingMessage, url: URL, what: string): OperationError {
  const status = res.statusCode ?? 0
  const hint = status === 401 || status === 403 ? 'the session was refused; log in again' : 'check the VDI and the host'
  return new OperationError('TRANSFER_HTTP_STATUS', `${what}: ${describeUrl(url)} answered HTTP ${status}; ${hint}`)
}

function tooManyRedirects(url: URL): OperationError {
  return new OperationError(
    'TRANSFER_TOO_MANY_REDIRECTS',
    `${describeUrl(url)}: more than ${MAX_REDIRECTS} redirects; check the pool's host addresses`,
  )
}

function isSuccess(res: IncomingMessage): boolean {
  const status = res.statusCode ?? 0
  return status >= 200 && status < 300
}

function dataPathUrl(client: XapiClient, path: string, query: Record<string, string>): URL {
  const url = new URL(path, client.url)
  url.searchParams.set('session_id', client.sessionId)
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value)
  return url
}

function requestOptions(
  client: XapiClient,
  method: 'GET' | 'PUT',
  options: TransferOptions,
): Parameters<typeof openRequest>[1] {
  return {
    method,
    tls: client.tls,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  }
}

function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted === true) throw new AbortedError(`${what} aborted`)
}

/** The promise's value, or undefined once `ms` passed first. */
function raceTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>(resolve => {
    timer = setTimeout(resolve, ms, undefined)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
