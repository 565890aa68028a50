/**
 * How xen-cr trusts a pool's TLS certificate, for the RPC client and the data paths alike.
 *
 * Three policies, one per pool: verify against the system's CAs (the default), pin the host
 * certificates by SHA-256 fingerprint (a XAPI host's own `xapi-ssl.pem` is self-signed, so
 * this is how a stock pool is trusted without turning checks off), or accept anything
 * (`allowUnauthorized`, which the CLI warns about). Every TLS connection xen-cr opens to a pool
 * goes through {@link connectPoolSocket}, which decides before a single byte of the request —
 * and so of the session id it carries — is written: the socket is handed to HTTP only once the
 * peer passed.
 */
import { X509Certificate } from 'node:crypto'
import { connect as netConnect, isIP, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import type { RequestOptions } from 'node:http'
import type { Xapi } from 'xen-api'
import { ConnectionError } from '../errors.js'

/** How the certificates of one pool's hosts are trusted. */
export interface TlsPolicy {
  /** accept any certificate (the CLI warns once per run) */
  readonly allowUnauthorized: boolean
  /** pinned host certificates, `sha256:AB:CD:…` (upper-case hex); when set, only these are accepted */
  readonly fingerprints: readonly string[]
}

/** The default: the system's CAs (plus `NODE_EXTRA_CA_CERTS`) and the host name. */
export const VERIFY_TLS: TlsPolicy = { allowUnauthorized: false, fingerprints: [] }

/**
 * A SHA-256 certificate fingerprint in the canonical form `sha256:AB:CD:…` (32 upper-case hex
 * pairs), from what a user is likely to paste: the line `openssl x509 -noout -fingerprint
 * -sha256` prints (`sha256 Fingerprint=AB:CD:…`, `SHA256 Fingerprint=…`), `sha256:ab:cd…`,
 * `AB:CD:…` alone, or 64 hex digits without colons. Undefined for anything else (SHA-1 included:
 * its 20 bytes are refused, not guessed at).
 */
export function parseFingerprint(text: string): string | undefined {
  let rest = text.trim()
  const labelled = /^sha-?256(?:\s+fingerprint\s*=|\s*[:=])\s*/i.exec(rest)
  if (labelled !== null) rest = rest.slice(labelled[0].length)
  const hex = rest.replace(/[:\s]/g, '')
  if (!/^[0-9a-f]{64}$/i.test(hex)) return undefined
  // colons, if any, must separate whole bytes
  if (rest.includes(':') && !/^[0-9a-f]{2}(?::[0-9a-f]{2}){31}$/i.test(rest)) return undefined
  return `sha256:${hex.toUpperCase().match(/../g)!.join(':')}`
}

/** The canonical fingerprint of a PEM or DER certificate (what `openssl x509 -fingerprint -sha256` shows). */
export function certificateFingerprint(certificate: string | Buffer): string {
  return `sha256:${new X509Certificate(certificate).fingerprint256}`
}

/** What the peer of an established TLS socket presented, or undefined when it sent no certificate. */
function peerFingerprint(socket: TLSSocket): string | undefined {
  const fingerprint = socket.getPeerCertificate().fingerprint256
  return typeof fingerprint === 'string' && fingerprint !== '' ? `sha256:${fingerprint}` : undefined
}

const OPENSSL_HINT = 'openssl x509 -noout -fingerprint -sha256 -in /etc/xensource/xapi-ssl.pem'

/** Undefined when `policy` accepts the peer of `socket`, else the one-line error saying what to do. */
export function checkPeer(socket: TLSSocket, origin: string, policy: TlsPolicy): ConnectionError | undefined {
  if (policy.allowUnauthorized) return undefined
  const presented = peerFingerprint(socket)
  if (policy.fingerprints.length > 0) {
    if (presented !== undefined && policy.fingerprints.includes(presented)) return undefined
    return new ConnectionError(
      'POOL_TLS_FINGERPRINT',
      `${origin} presented certificate ${presented ?? '(none)'}, which is not a fingerprint pinned for this pool; nothing was sent to it: if the host's certificate was replaced, read the new one on the host (${OPENSSL_HINT}) and add it to the pool's "fingerprint" in the config, otherwise something is intercepting the connection`,
      { url: origin },
    )
  }
  if (socket.authorized) return undefined
  const why = socket.authorizationError instanceof Error ? socket.authorizationError.message : socket.authorizationError
  return new ConnectionError(
    'POOL_TLS',
    `${origin} presented a certificate that is not trusted (${String(why)}); if it is the host's own self-signed certificate, pin it in the pool's config entry as "fingerprint": "${presented ?? ''}" after checking it on the host (${OPENSSL_HINT}), or trust its CA with NODE_EXTRA_CA_CERTS`,
    { url: origin },
  )
}

/** Where to connect: `protocol` is `http:` or `https:`. */
export interface SocketTarget {
  readonly protocol: string
  readonly host: string
  readonly port: number
  /** bytes the socket buffers each way before it pushes back (node's default, 16 KiB, when absent) */
  readonly highWaterMark?: number
}

/**
 * Opens a socket to a pool host: plain TCP for `http:`, TLS for `https:` checked against
 * `policy`. `callback` gets the socket only once it is connected and, for TLS, once the peer
 * passed; otherwise the error ({@link checkPeer}'s, or the socket's own). Never both, never twice.
 */
export function connectPoolSocket(
  target: SocketTarget,
  policy: TlsPolicy,
  callback: (error: Error | null, socket: Socket | null) => void,
): void {
  const host = target.host.startsWith('[') ? target.host.slice(1, -1) : target.host
  const secure = target.protocol === 'https:'
  const origin = `${target.protocol}//${target.host}:${target.port}`
  const socket: Socket = secure
    ? tlsConnect({
        host,
        port: target.port,
        // SNI carries names only (an address there is an RFC 6066 violation Node warns about)
        ...(isIP(host) === 0 ? { servername: host } : {}),
        // the decision is ours, in checkPeer, with the fingerprint at hand to tell the user
        rejectUnauthorized: false,
        // as xen-api: XenServer 6.5 hosts may offer nothing newer
        minVersion: 'TLSv1',
        ...(target.highWaterMark === undefined ? {} : { highWaterMark: target.highWaterMark }),
      })
    : netConnect({
        host,
        port: target.port,
        ...(target.highWaterMark === undefined ? {} : { highWaterMark: target.highWaterMark }),
      })
  socket.setNoDelay(true)
  let settled = false
  const settle = (error: Error | undefined): void => {
    if (settled) return
    settled = true
    socket.off('error', settle)
    if (error === undefined) return callback(null, socket)
    socket.destroy()
    callback(error, null)
  }
  socket.once('error', settle)
  socket.once(secure ? 'secureConnect' : 'connect', () =>
    settle(secure ? checkPeer(socket as TLSSocket, origin, policy) : undefined),
  )
}

/**
 * The `createConnection` option of a `node:http(s)` request to `url` under `policy` (used
 * without an agent: one socket per request, as XAPI closes it after each transfer anyway).
 */
export function createConnectionFor(
  url: URL,
  policy: TlsPolicy,
  highWaterMark?: number,
): NonNullable<RequestOptions['createConnection']> {
  const port = url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : 80
  const target = {
    protocol: url.protocol,
    host: url.hostname,
    port,
    ...(highWaterMark === undefined ? {} : { highWaterMark }),
  }
  return (_options, oncreate) => {
    connectPoolSocket(target, policy, (error, socket) =>
      // node:http reads the socket only when there is no error
      oncreate(error, socket as Socket),
    )
    return undefined
  }
}

/** The private `xen-api` 4.7.6 fields {@link applyTlsPolicy} replaces. */
interface XapiTlsInternals {
  _undiciDispatcher?: { constructor: new (options: object) => unknown; close(): Promise<void> }
  _httpInactivityTimeout?: number
  _url?: unknown
  _setUrl?: (url: unknown) => void
}

/**
 * Makes `xen-api`'s RPC requests open their sockets through {@link connectPoolSocket} under
 * `policy`. xen-api takes only `allowUnauthorized`; its undici Agent is built in the constructor
 * and captured by the transport, so this replaces the Agent (same class, same timeouts and
 * redirect limit as xen-api gives it, our connector) and rebuilds the transport with
 * `_setUrl`. Valid for the pinned xen-api 4.7.6: should the fields go, this changes nothing and
 * xen-api keeps its own verification (`allowUnauthorized` is passed to it too), so a pinned
 * self-signed host is refused rather than accepted — which test/integration/tls.test.ts shows.
 * Call before `connect()`.
 */
export function applyTlsPolicy(xapi: Xapi, policy: TlsPolicy): void {
  const internals = xapi as unknown as XapiTlsInternals
  const previous = internals._undiciDispatcher
  if (previous === undefined || internals._setUrl === undefined || internals._url === undefined) return
  const timeout = internals._httpInactivityTimeout ?? 5 * 60_000
  const Agent = previous.constructor
  internals._undiciDispatcher = new Agent({
    bodyTimeout: timeout,
    headersTimeout: timeout,
    maxRedirections: 3,
    connect: (
      options: { protocol: string; hostname: string; port: string | number },
      callback: (error: Error | null, socket: Socket | null) => void,
    ) => {
      const port = Number(options.port) || (options.protocol === 'https:' ? 443 : 80)
      connectPoolSocket({ protocol: options.protocol, host: options.hostname, port }, policy, callback)
    },
  }) as NonNullable<XapiTlsInternals['_undiciDispatcher']>
  internals._setUrl.call(xapi, internals._url)
  void previous.close().catch(() => undefined)
}

/**
 * The fingerprint of the certificate `url`'s host presents (no verification: it is only read,
 * nothing is sent), or undefined when it presents none or cannot be reached.
 */
export function presentedFingerprint(url: string, signal?: AbortSignal): Promise<string | undefined> {
  const target = new URL(url)
  const host = target.hostname.startsWith('[') ? target.hostname.slice(1, -1) : target.hostname
  return new Promise(resolve => {
    const socket = tlsConnect({
      host,
      port: target.port === '' ? 443 : Number(target.port),
      ...(isIP(host) === 0 ? { servername: host } : {}),
      rejectUnauthorized: false,
      minVersion: 'TLSv1',
    })
    const onAbort = (): void => done(undefined)
    const done = (fingerprint: string | undefined): void => {
      signal?.removeEventListener('abort', onAbort)
      socket.destroy()
      resolve(fingerprint)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    socket.setTimeout(30_000, () => done(undefined))
    socket.once('secureConnect', () => done(peerFingerprint(socket)))
    socket.once('error', () => done(undefined))
  })
}
