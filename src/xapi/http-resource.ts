/**
 * The HTTP side of XAPI's disk paths with node:http(s) directly: we need an exact
 * Content-Length, redirects followed by hand and every response body consumed or destroyed,
 * which an RPC library hides. URLs here carry `session_id`, so messages use `describeUrl`.
 */
import {
  request as httpRequest,
  type ClientRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type RequestOptions as HttpRequestOptions,
} from 'node:http'
import { request as httpsRequest } from 'node:https'
import { OperationError } from '../errors.js'
import { createConnectionFor, type TlsPolicy } from './tls.js'

/** At most this many 302s per request, as XAPI redirects once to the host that has the SR. */
export const MAX_REDIRECTS = 3

/**
 * Buffer of a data-path socket each way, and so of its response stream, which takes the
 * socket's (node's default, 16 KiB, is less than one 64 KiB read). With a few reads of room the
 * export's socket is not stopped and restarted for every chunk, and a corked import socket
 * takes a turn's worth of chunks before it pushes back (write-batching.ts). `http.request`'s
 * own `highWaterMark` option does not reach a socket made by `createConnection`.
 */
export const DATA_HIGH_WATER_MARK = 256 * 1024

export interface RequestOptions {
  readonly method: 'GET' | 'PUT'
  readonly headers?: OutgoingHttpHeaders
  readonly signal?: AbortSignal
  /** the pool's certificate policy (`client.tls`); every https socket is checked against it before use */
  readonly tls: TlsPolicy
  /** inactivity timeout of the socket, ms */
  readonly idleTimeoutMs?: number
}

/** `origin + path` of a data-path URL: never the query, which holds the session. */
export function describeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`
}

/**
 * Starts a request. XAPI closes the connection after each transfer, so no keep-alive agent: a
 * fresh socket per request, opened by tls.ts under the pool's policy (`createConnection`
 * without an agent), which hands it over only once the certificate passed.
 */
export function openRequest(url: URL, options: RequestOptions): ClientRequest {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest
  const requestOptions: HttpRequestOptions = {
    method: options.method,
    headers: options.headers ?? {},
    createConnection: createConnectionFor(url, options.tls, DATA_HIGH_WATER_MARK),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  }
  const req = send(url, requestOptions)
  if (options.idleTimeoutMs !== undefined) {
    req.setTimeout(options.idleTimeoutMs, () => {
      req.destroy(
        new OperationError(
          'TRANSFER_STALLED',
          `${describeUrl(url)}: no data for ${options.idleTimeoutMs} ms; the host stopped answering`,
        ),
      )
    })
  }
  return req
}

/** The response's headers, or the request's error; also settles if the socket closes first. */
export function awaitResponse(req: ClientRequest, url: URL): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      cleanup()
      resolve(res)
    }
    const onError = (error: Error): void => {
      cleanup()
      reject(error)
    }
    const onClose = (): void => {
      cleanup()
      reject(new OperationError('TRANSFER_NO_RESPONSE', `${describeUrl(url)} closed the connection without a response`))
    }
    const cleanup = (): void => {
      req.off('response', onResponse)
      req.off('error', onError)
      req.off('close', onClose)
    }
    req.on('response', onResponse)
    req.on('error', onError)
    req.on('close', onClose)
  })
}

/** Throws the body away and frees the socket (redirects, errors, probes). */
export function discard(res: IncomingMessage): void {
  res.on('error', () => undefined)
  res.destroy()
}

/** Reads a response to its end (XAPI's import answer has no body, but we must drain it). */
export function drain(res: IncomingMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    res.on('end', resolve)
    res.on('error', reject)
    res.on('close', () => {
      if (!res.complete)
        reject(new OperationError('TRANSFER_INCOMPLETE', 'the host closed the connection before the end of its answer'))
    })
    res.resume()
  })
}

export function isRedirect(res: IncomingMessage): boolean {
  return (
    res.statusCode === 301 ||
    res.statusCode === 302 ||
    res.statusCode === 303 ||
    res.statusCode === 307 ||
    res.statusCode === 308
  )
}

/** The redirect target, resolved against the request URL. */
export function redirectTarget(res: IncomingMessage, url: URL): URL {
  const location = res.headers.location
  if (location === undefined || location === '') {
    throw new OperationError(
      'TRANSFER_BAD_REDIRECT',
      `${describeUrl(url)} answered ${res.statusCode} without a Location`,
    )
  }
  return new URL(location, url)
}
