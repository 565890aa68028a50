/**
 * The HTTP (and HTTPS) server of one lab host. Routes by the longest registered path prefix, as XAPI's
 * `http_svr.ml` does: `POST /jsonrpc` is JSON-RPC, every other POST is XML-RPC (the JS client
 * posts to `/xmlrpc`), `OPTIONS` is a CORS preflight, the disk data paths and the lab control
 * API (`/lab/`, outside the XAPI namespace) have their own handlers.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { dispatch, type DispatchOutcome, type DispatchTarget } from '../rpc/dispatch.js'
import { speaksJsonRpc } from '../rpc/versions.js'
import { decodeJsonCall, encodeJsonFailure, encodeJsonSuccess } from '../wire/jsonrpc.js'
import { WireParseError } from '../wire/xml.js'
import { decodeXmlCall, encodeXmlBare, encodeXmlFailure, encodeXmlSuccess } from '../wire/xmlrpc.js'
import { EofBodyFront } from './eof-body-front.js'

/** A handler mounted on a path prefix for one HTTP method (`*` for any). */
export interface Route {
  readonly method: string
  readonly prefix: string
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>
}

const CORS_HEADERS = { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'X-Requested-With' }
/** RPC bodies are small; anything larger is not an API call. */
const MAX_RPC_BODY = 64 * 1024 * 1024

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true })

/** The body as text, and whether it held bytes that are not UTF-8 (XAPI refuses such string parameters). */
async function readBody(req: IncomingMessage): Promise<{ text: string; invalidUtf8: boolean }> {
  const bytes = await collectBody(req)
  try {
    return { text: STRICT_UTF8.decode(bytes), invalidUtf8: false }
  } catch {
    return { text: bytes.toString('utf8'), invalidUtf8: true }
  }
}

/**
 * The request's bytes, read with plain listeners: every API call comes through here, and an
 * async iterator over the request costs more than the rest of a small call's parsing.
 */
function collectBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
    }
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > MAX_RPC_BODY) {
        cleanup()
        // as the iterator did when the loop threw: the rest of the body is not read
        req.destroy()
        reject(new WireParseError('request body too large'))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = (): void => {
      cleanup()
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size))
    }
    const onError = (error: Error): void => {
      cleanup()
      reject(error)
    }
    // a peer gone before the end: the iterator rejected with ERR_STREAM_PREMATURE_CLOSE
    const onClose = (): void => {
      cleanup()
      reject(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }))
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('close', onClose)
  })
}

function send(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string,
  extra: Record<string, string> = {},
): void {
  const bytes = Buffer.from(body, 'utf8')
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': String(bytes.length),
    ...CORS_HEADERS,
    ...extra,
  })
  res.end(bytes)
}

/** XAPI's answer to a body it cannot parse: HTTP 500 with an HTML page naming the exception. */
function sendParseError(res: ServerResponse, error: unknown): void {
  const detail = (error instanceof Error ? error.message : String(error)).replace(/[<>&]/g, ' ')
  send(
    res,
    500,
    'text/html',
    `<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred; please wait a while and try again. If the problem persists, please contact your support representative.<h1> Additional information </h1>Parse_error(&quot;${detail}&quot;)</body></html>`,
    { connection: 'close' },
  )
}

function rpcRoute(prefix: string, target: DispatchTarget, format: 'xml' | 'json'): Route {
  return {
    method: 'POST',
    prefix,
    async handle(req, res) {
      let body: string
      let invalidUtf8: boolean
      try {
        ;({ text: body, invalidUtf8 } = await readBody(req))
      } catch (error) {
        sendParseError(res, error)
        return
      }
      if (format === 'json') {
        let call
        try {
          call = decodeJsonCall(body)
        } catch (error) {
          sendParseError(res, error)
          return
        }
        const outcome = await dispatch(target, call.method, call.params, { invalidUtf8 })
        if (outcome.kind === 'drop') return void req.socket.destroy()
        // a XenServer 6.5 host runs the call but answers JSON-RPC 1.0 labelled text/xml, which
        // makes clients fall back to XML-RPC (rpc/versions.ts)
        const modern = speaksJsonRpc(target.pool)
        const version = modern ? call.version : 1
        const answer =
          outcome.kind === 'success'
            ? encodeJsonSuccess(version, call.id, outcome.value)
            : encodeJsonFailure(version, call.id, outcome.code, outcome.params)
        target.pool.stats.rpcCall(call.method, Buffer.byteLength(answer))
        send(res, 200, modern ? 'application/json' : 'text/xml', answer)
        return
      }
      let call
      try {
        call = decodeXmlCall(body)
      } catch (error) {
        sendParseError(res, error)
        return
      }
      const outcome: DispatchOutcome = await dispatch(target, call.method, call.params, { invalidUtf8 })
      if (outcome.kind === 'drop') return void req.socket.destroy()
      const answer =
        outcome.kind === 'failure'
          ? encodeXmlFailure(outcome.code, outcome.params)
          : outcome.bare === true
            ? encodeXmlBare(outcome.value)
            : encodeXmlSuccess(outcome.value)
      // Counted per pool for the control API's stats: a client's call count is deterministic.
      target.pool.stats.rpcCall(call.method, Buffer.byteLength(answer))
      send(res, 200, 'text/xml', answer)
    },
  }
}

/** Where a host listens and what it serves. */
export interface HostServerOptions {
  readonly target: DispatchTarget
  readonly address: string
  readonly port: number
  /** disk data paths and the control API */
  readonly routes: readonly Route[]
  /**
   * Also serve everything over HTTPS on `port` (0: any) with the host's PEM key and
   * certificate, as XAPI serves port 443 beside 80.
   */
  readonly tls?: { readonly port: number; readonly cert: string; readonly key: string }
}

/** Serves one request with the route of the longest matching prefix (404 when none). */
async function route(routes: readonly Route[], req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://lab').pathname
  let best: Route | undefined
  for (const route of routes) {
    if (route.method !== '*' && route.method !== req.method) continue
    if (!path.startsWith(route.prefix)) continue
    if (best === undefined || route.prefix.length > best.prefix.length) best = route
  }
  try {
    if (best === undefined) {
      req.resume()
      send(res, 404, 'text/html', '<html><body><h1>HTTP 404 not found</h1></body></html>', { connection: 'close' })
      return
    }
    await best.handle(req, res)
  } catch (error) {
    // A handler that failed before answering gets XAPI's generic 500; after that the socket goes.
    if (!res.headersSent) sendParseError(res, error)
    else res.destroy()
  }
}

/** Whether `req` came over the host's HTTPS port (handlers that redirect keep the scheme). */
export function isHttps(req: IncomingMessage): boolean {
  return (req.socket as TLSSocket).encrypted === true
}

/** One host's HTTP server, and its HTTPS server when asked. */
export class HostServer {
  /** listens for the http.Server; serves XAPI's length-less import bodies itself (read to EOF) */
  readonly #front: EofBodyFront
  readonly #tlsFront: EofBodyFront | undefined

  private constructor(front: EofBodyFront, tlsFront: EofBodyFront | undefined) {
    this.#front = front
    this.#tlsFront = tlsFront
  }

  /** Starts listening; rejects with the listen error (e.g. EADDRINUSE) so the caller can pick another address. */
  static async listen(options: HostServerOptions): Promise<HostServer> {
    const routes: Route[] = [
      rpcRoute('/', options.target, 'xml'),
      rpcRoute('/jsonrpc', options.target, 'json'),
      {
        method: 'OPTIONS',
        prefix: '/',
        handle: async (_req, res) => {
          res.writeHead(200, {
            ...CORS_HEADERS,
            'access-control-allow-methods': 'POST, GET, PUT, OPTIONS',
            'content-length': '0',
          })
          res.end()
        },
      },
      ...options.routes,
    ]
    const serve = (req: IncomingMessage, res: ServerResponse): void => void route(routes, req, res)
    // no whole-request limit (node's default cuts a request after 5 minutes): a disk import over
    // a slow link runs for hours, and XAPI does not cut it either
    const server = createServer({ requestTimeout: 0 })
    server.on('request', serve)
    const front = await EofBodyFront.listen(server, { address: options.address, port: options.port })
    if (options.tls === undefined) return new HostServer(front, undefined)
    // the same routes behind a second listening socket that speaks TLS
    const tlsServer = createServer({ requestTimeout: 0 })
    tlsServer.on('request', serve)
    try {
      const { port, cert, key } = options.tls
      return new HostServer(
        front,
        await EofBodyFront.listen(tlsServer, { address: options.address, port, tls: { cert, key } }),
      )
    } catch (error) {
      await front.close()
      throw error
    }
  }

  get port(): number {
    return this.#front.port
  }

  /** the HTTPS port, when the host serves HTTPS */
  get tlsPort(): number | undefined {
    return this.#tlsFront?.port
  }

  async close(): Promise<void> {
    await Promise.all([this.#front.close(), this.#tlsFront?.close()])
  }
}
