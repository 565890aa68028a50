/**
 * The listening socket in front of a lab host's `http.Server`, for one XAPI quirk (reference
 * §5.3, "Content-length quirks"): a `PUT` to an import path (`/import_raw_vdi`, `/import`)
 * with neither Content-Length nor Transfer-Encoding has, to XAPI, a body that runs until the
 * client closes the connection. Node's HTTP/1.1 parser, like any, gives such a request no body
 * and takes the bytes after it for a malformed next request. So the front reads the head of
 * each new connection's first request itself: such an import is served from the raw socket (a
 * real IncomingMessage whose body ends at EOF, a real ServerResponse written to the socket,
 * delivered through the http.Server's own `request` event, so the same handlers run); every
 * other connection is handed to the http.Server untouched, keep-alive and pipelining included.
 */
import { IncomingMessage, ServerResponse } from 'node:http'
import type { IncomingHttpHeaders, Server as HttpServer } from 'node:http'
import { createServer } from 'node:net'
import type { AddressInfo, Server as NetServer, Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'

/** The request line and header fields of one request, as sent. */
export interface RequestHead {
  readonly method: string
  readonly url: string
  readonly httpVersion: '1.0' | '1.1'
  /** name, value, name, value… as in `IncomingMessage#rawHeaders` */
  readonly rawHeaders: readonly string[]
}

/** Node's default `maxHeaderSize`: a longer head is the http.Server's to refuse (431). */
const MAX_HEAD = 16 * 1024
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1')
/** Only a request starting like this can be one the front serves; anything else goes at once. */
const CLAIMED_START = 'PUT '
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const REQUEST_LINE = /^([^ ]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/
/** Visible ASCII, space, tab and obs-text; no other control character (a bare LF included). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

/**
 * A request head (request line through the empty line, CRLF endings) parsed strictly, or
 * undefined for anything it does not fully understand (obs-fold, bare LF, a space before a
 * colon, an HTTP version other than 1.0/1.1…): such a request is left to Node's parser.
 */
export function parseRequestHead(head: Buffer): RequestHead | undefined {
  const text = head.toString('latin1')
  if (!text.endsWith('\r\n\r\n')) return undefined
  const [requestLine = '', ...fields] = text.slice(0, -4).split('\r\n')
  const parts = REQUEST_LINE.exec(requestLine)
  if (parts === null) return undefined
  const [, method = '', url = '', minor] = parts
  if (!TOKEN.test(method)) return undefined
  const rawHeaders: string[] = []
  for (const field of fields) {
    const colon = field.indexOf(':')
    const name = field.slice(0, colon)
    const value = field.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '')
    if (colon <= 0 || !TOKEN.test(name) || !FIELD_VALUE.test(value)) return undefined
    rawHeaders.push(name, value)
  }
  return { method, url, httpVersion: minor === '0' ? '1.0' : '1.1', rawHeaders }
}

/**
 * Whether XAPI reads this request's body until the connection closes: a `PUT` to a path under
 * `/import` (both import handlers) with neither Content-Length nor Transfer-Encoding.
 */
export function readsBodyToEof(head: RequestHead): boolean {
  if (head.method !== 'PUT') return false
  let path: string
  try {
    path = new URL(head.url, 'http://lab.invalid').pathname
  } catch {
    return false
  }
  if (!path.startsWith('/import')) return false
  for (let i = 0; i < head.rawHeaders.length; i += 2) {
    const name = (head.rawHeaders[i] as string).toLowerCase()
    if (name === 'content-length' || name === 'transfer-encoding') return false
  }
  return true
}

/** The `headers` object Node would build: lower-case names, repeats joined (cookies with `; `). */
function headersOf(rawHeaders: readonly string[]): IncomingHttpHeaders {
  const headers: Record<string, string | string[]> = {}
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase()
    const value = rawHeaders[i + 1] as string
    const previous = headers[name]
    if (name === 'set-cookie') headers[name] = [...((previous as string[] | undefined) ?? []), value]
    else if (previous === undefined) headers[name] = value
    else headers[name] = `${previous as string}${name === 'cookie' ? '; ' : ', '}${value}`
  }
  return headers
}

/** One host's listening socket; see the file comment. */
export class EofBodyFront {
  readonly #net: NetServer
  readonly #http: HttpServer
  /** every accepted connection, whoever serves it, so that `close()` can end them all */
  readonly #sockets = new Set<Socket>()

  private constructor(net: NetServer, http: HttpServer) {
    this.#net = net
    this.#http = http
  }

  /**
   * Listens on `address:port` for `http` (which must not listen itself); rejects with the
   * listen error (e.g. EADDRINUSE).
   */
  static async listen(
    http: HttpServer,
    options: {
      readonly address: string
      readonly port: number
      /** serve HTTPS with this PEM key and certificate (XAPI's port 443) instead of plain HTTP */
      readonly tls?: { readonly cert: string; readonly key: string }
    },
  ): Promise<EofBodyFront> {
    // what http.Server asks of its own listening socket
    const net = options.tls
      ? createTlsServer({ allowHalfOpen: true, noDelay: true, cert: options.tls.cert, key: options.tls.key })
      : createServer({ allowHalfOpen: true, noDelay: true })
    const front = new EofBodyFront(net, http)
    if (options.tls) {
      // a handshake still under way is a connection to end on close() too
      net.on('connection', (raw: Socket) => {
        front.#sockets.add(raw)
        raw.once('close', () => front.#sockets.delete(raw))
      })
      net.on('secureConnection', (socket: Socket) => front.#accept(socket))
      // a client that refuses our certificate (or speaks plain HTTP) is its own business
      net.on('tlsClientError', (_error: Error, raw: Socket) => raw.destroy())
    } else net.on('connection', (socket: Socket) => front.#accept(socket))
    await new Promise<void>((resolve, reject) => {
      net.once('error', reject)
      net.listen(options.port, options.address, () => {
        net.off('error', reject)
        resolve()
      })
    })
    // http.Server starts its connection bookkeeping (headersTimeout, requestTimeout,
    // closeAllConnections) on 'listening'; it never listens itself here
    http.emit('listening')
    return front
  }

  get port(): number {
    return (this.#net.address() as AddressInfo).port
  }

  /** Stops listening and ends every connection, whatever it is doing. */
  async close(): Promise<void> {
    await new Promise<void>(resolve => {
      this.#net.close(() => resolve())
      for (const socket of this.#sockets) socket.destroy()
    })
    // clears the http.Server's bookkeeping timer; it has no listening socket to close
    await new Promise<void>(resolve => this.#http.close(() => resolve()))
  }

  /** Reads the first request's head, just far enough to know who serves the connection. */
  #accept(socket: Socket): void {
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
    let seen: Buffer = Buffer.alloc(0)
    const detach = (): void => {
      socket.off('data', onData)
      socket.off('end', onGone)
      socket.off('error', onGone)
    }
    // EOF or an error before a whole head: there is no request to answer
    const onGone = (): void => {
      detach()
      socket.destroy()
    }
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk])
      const start = seen.subarray(0, CLAIMED_START.length).toString('latin1')
      let head: RequestHead | undefined
      if (CLAIMED_START.startsWith(start)) {
        const end = seen.indexOf(HEAD_END)
        if (end === -1 && seen.length <= MAX_HEAD) return
        if (end !== -1 && end + HEAD_END.length <= MAX_HEAD)
          head = parseRequestHead(seen.subarray(0, end + HEAD_END.length))
        if (head !== undefined && readsBodyToEof(head)) {
          detach()
          this.#serve(socket, head, seen.subarray(end + HEAD_END.length))
          return
        }
      }
      detach()
      this.#handOff(socket, seen)
    }
    socket.on('data', onData)
    socket.on('end', onGone)
    socket.on('error', onGone)
  }

  /** The http.Server takes the connection as if it had accepted it, bytes read so far included. */
  #handOff(socket: Socket, seen: Buffer): void {
    socket.pause()
    socket.unshift(seen)
    this.#http.emit('connection', socket)
    socket.resume()
  }

  /**
   * Serves one request whose body is everything after its head until the client closes, then
   * closes the connection (XAPI closes after every data-path request).
   */
  #serve(socket: Socket, head: RequestHead, rest: Buffer): void {
    const req = new IncomingMessage(socket)
    req.method = head.method
    req.url = head.url
    req.httpVersion = head.httpVersion
    req.httpVersionMajor = 1
    req.httpVersionMinor = head.httpVersion === '1.0' ? 0 : 1
    req.rawHeaders = [...head.rawHeaders]
    req.headers = headersOf(head.rawHeaders)
    // the body, with backpressure: the socket pauses while the request holds a full buffer,
    // and IncomingMessage#_read resumes it
    if (rest.length > 0) req.push(rest)
    socket.on('data', (chunk: Buffer) => {
      if (!req.push(chunk)) socket.pause()
    })
    socket.on('end', () => {
      req.complete = true
      req.push(null)
    })
    socket.on('error', error => req.destroy(error))
    socket.on('close', () => {
      if (!req.complete) req.destroy()
    })

    const res = new ServerResponse(req)
    res.shouldKeepAlive = false
    res.assignSocket(socket)
    res.on('finish', () => {
      res.detachSocket(socket)
      // the answer is out: close, and drop whatever body is still coming (XAPI closes too)
      socket.end(() => socket.destroy())
    })
    this.#http.emit('request', req, res)
  }
}
