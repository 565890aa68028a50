/**
 * A XAPI failure raised inside the lab: the code and params exactly as a host puts them on the
 * wire (`Failure` arrays in XML-RPC, `error.message`/`error.data` in JSON-RPC, a failed task's
 * `error_info`). The lab is a server: it has its own fault type so that it meets the client's
 * error classes only over the wire, as a real host does.
 */
export class XapiFault extends Error {
  readonly code: string
  readonly params: readonly string[]

  constructor(code: string, params: readonly string[]) {
    super(params.length > 0 ? `${code} (${params.join(', ')})` : code)
    this.code = code
    this.params = params
  }

  override get name(): string {
    return 'XapiFault'
  }

  /** The fault as XAPI's error array: `[code, ...params]`. */
  toArray(): string[] {
    return [this.code, ...this.params]
  }
}

/** The fault `code` with `params`, for `throw`: the dispatcher sends it back as the call's failure. */
export function xapiFault(code: string, ...params: string[]): XapiFault {
  return new XapiFault(code, params)
}

export function isXapiFault(error: unknown, code?: string): error is XapiFault {
  return error instanceof XapiFault && (code === undefined || error.code === code)
}
