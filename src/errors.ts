/**
 * The one error hierarchy of xen-cr.
 *
 * Every error we throw is a {@link XenCrError} with a stable string `code` that callers match
 * on, an optional `cause`, and typed context. Each class belongs to one {@link ErrorCategory};
 * the CLI maps categories to exit codes in exactly one place (`src/cli/exit-codes.ts`).
 * Messages are one line, name the object involved and, where the user can act, say what to do.
 * They never contain secrets.
 */

/** What kind of failure this is, which decides the exit code at the CLI edge. */
export type ErrorCategory =
  /** bad flags or arguments (exit 2) */
  | 'usage'
  /** invalid or missing configuration (exit 2) */
  | 'config'
  /** cannot reach or log in to a pool (exit 4) */
  | 'connection'
  /** another run holds the lease (exit 3) */
  | 'lease'
  /** the request was refused before anything was written (exit 5) */
  | 'validation'
  /** the work ran and failed (exit 1) */
  | 'failure'

export interface XenCrErrorOptions {
  cause?: unknown
}

export class XenCrError extends Error {
  readonly code: string
  readonly category: ErrorCategory

  constructor(code: string, message: string, category: ErrorCategory, options: XenCrErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.category = category
  }

  override get name(): string {
    return this.constructor.name
  }
}

/** Flags or arguments the user got wrong. */
export class UsageError extends XenCrError {
  constructor(code: string, message: string, options?: XenCrErrorOptions) {
    super(code, message, 'usage', options)
  }
}

/** A config file, key or credential source that is missing or invalid. */
export class ConfigError extends XenCrError {
  readonly file: string | undefined
  readonly key: string | undefined

  constructor(
    code: string,
    message: string,
    context: { file?: string; key?: string } = {},
    options?: XenCrErrorOptions,
  ) {
    super(code, message, 'config', options)
    this.file = context.file
    this.key = context.key
  }
}

/** A pool that cannot be reached or logged in to. */
export class ConnectionError extends XenCrError {
  readonly url: string | undefined

  constructor(code: string, message: string, context: { url?: string } = {}, options?: XenCrErrorOptions) {
    super(code, message, 'connection', options)
    this.url = context.url
  }
}

/** A request refused by validation before anything was written. */
export class ValidationError extends XenCrError {
  constructor(code: string, message: string, options?: XenCrErrorOptions) {
    super(code, message, 'validation', options)
  }
}

/** Another run holds the lease on this job or VM. */
export class LeaseError extends XenCrError {
  constructor(code: string, message: string, options?: XenCrErrorOptions) {
    super(code, message, 'lease', options)
  }
}

/** Work that started and failed: a transfer, a pass, a VM. */
export class OperationError extends XenCrError {
  constructor(code: string, message: string, options?: XenCrErrorOptions) {
    super(code, message, 'failure', options)
  }
}

/** The operation was aborted through its AbortSignal (SIGINT, SIGTERM, timeout). */
export class AbortedError extends XenCrError {
  constructor(message = 'operation aborted', options?: XenCrErrorOptions) {
    super('ABORTED', message, 'failure', options)
  }
}

/**
 * An error reported by a XAPI server: `xapiCode` and `params` exactly as the server sent them,
 * plus the method that was called. `code` is `XAPI_<xapiCode>` so it never collides with ours.
 */
export class XapiError extends XenCrError {
  readonly xapiCode: string
  readonly params: readonly string[]
  readonly method: string

  constructor(xapiCode: string, params: readonly string[], method: string, options?: XenCrErrorOptions) {
    super(
      `XAPI_${xapiCode}`,
      `${method}: ${xapiCode}${params.length > 0 ? ` (${params.join(', ')})` : ''}`,
      'failure',
      options,
    )
    this.xapiCode = xapiCode
    this.params = params
    this.method = method
  }
}

/** A VHD stream that does not follow the format; `offset` is the byte where it went wrong. */
export class VhdError extends XenCrError {
  readonly offset: number

  constructor(code: string, message: string, offset: number, options?: XenCrErrorOptions) {
    super(code, `${message} (at byte ${offset})`, 'failure', options)
    this.offset = offset
  }
}

/** An XVA (tar of `ova.xml` and disk chunks) that does not follow the format; `offset` is the byte where it went wrong. */
export class XvaError extends XenCrError {
  readonly offset: number

  constructor(code: string, message: string, offset: number, options?: XenCrErrorOptions) {
    super(code, `${message} (at byte ${offset})`, 'failure', options)
    this.offset = offset
  }
}

export function isXenCrError(error: unknown): error is XenCrError {
  return error instanceof XenCrError
}

export function isXapiError(error: unknown, xapiCode?: string): error is XapiError {
  return error instanceof XapiError && (xapiCode === undefined || error.xapiCode === xapiCode)
}
