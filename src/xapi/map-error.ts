/**
 * Turns whatever `xen-api`, undici or node:http threw into our hierarchy. The original error is
 * never chained as `cause` when it came from `xen-api`: its `call` slot holds the call's
 * parameters, and we promise that no credential reaches an error (login params are obfuscated
 * there, but other calls' params are not ours to vet).
 */
import { AbortedError, ConnectionError, OperationError, XapiError, XenCrError } from '../errors.js'

/** Socket-level failures: the pool cannot be reached (or stopped answering). */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
])

/** TLS failures: certificate not trusted, wrong protocol, … */
export function isTlsErrorCode(code: string): boolean {
  return (
    code.startsWith('ERR_SSL_') ||
    code.startsWith('ERR_TLS_') ||
    code.includes('CERT') ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    code === 'EPROTO'
  )
}

export function isNetworkErrorCode(code: string): boolean {
  return NETWORK_CODES.has(code)
}

function errorCode(error: unknown): string | undefined {
  if (error === null || typeof error !== 'object') return undefined
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string') return code
  const cause = (error as { cause?: unknown }).cause
  return cause === error ? undefined : errorCode(cause)
}

function isXenApiError(error: unknown): error is { code: string; params: unknown[] } {
  return (
    error !== null &&
    typeof error === 'object' &&
    typeof (error as { code?: unknown }).code === 'string' &&
    Array.isArray((error as { params?: unknown }).params)
  )
}

/** Replaces every occurrence of `secret` in `text`. */
export function redact(text: string, secret: string | undefined): string {
  return secret === undefined || secret === '' ? text : text.split(secret).join('* obfuscated *')
}

export interface ErrorContext {
  /** what was called: an XAPI method or a short description */
  readonly method: string
  /** the pool's URL, without credentials */
  readonly url: string
  /** scrubbed from anything we copy out of the server's answer */
  readonly password?: string
}

/**
 * The XenCrError for a failed XAPI call: `XapiError` with the server's code and params (the
 * password, should a server ever echo it, replaced), `ConnectionError` for socket and TLS
 * failures, anything of ours unchanged.
 */
export function mapCallError(error: unknown, context: ErrorContext): XenCrError {
  if (error instanceof XenCrError) return error
  if (isXenApiError(error)) {
    const params = error.params.map(param => redact(String(param), context.password))
    return new XapiError(error.code, params, context.method)
  }
  if (error instanceof Error && error.name === 'AbortError') {
    return new AbortedError(`${context.method} on ${context.url} aborted`)
  }
  const code = errorCode(error)
  if (code !== undefined && isTlsErrorCode(code)) {
    return new ConnectionError(
      'POOL_TLS',
      `TLS connection to ${context.url} failed (${code}); check the URL's scheme and the host's certificate, or allow unauthorized certificates for this pool`,
      { url: context.url },
    )
  }
  if (code !== undefined && isNetworkErrorCode(code)) {
    return new ConnectionError(
      'POOL_UNREACHABLE',
      `cannot reach ${context.url} (${code} during ${context.method}); check the URL and that the host is up`,
      { url: context.url },
    )
  }
  const message = error instanceof Error ? error.message : String(error)
  const status = /^unexpect(?:ed)? statusCode (\d+)/.exec(message)
  if (status !== null) {
    return new ConnectionError(
      'POOL_UNREACHABLE',
      `${context.url} answered HTTP ${status[1]} to ${context.method}; check that the URL points at a XAPI host`,
      { url: context.url },
    )
  }
  return new OperationError(
    'XAPI_CALL_FAILED',
    `${context.method} on ${context.url} failed: ${redact(message, context.password)}`,
  )
}
