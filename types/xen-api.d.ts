/**
 * Ambient declarations for the parts of Vates' untyped `xen-api` package (4.7.x) that
 * `src/xapi/` uses. Only `src/xapi/` imports it; everything else goes through `XapiClient`.
 */
declare module 'xen-api' {
  import type { EventEmitter } from 'node:events'

  export interface XenApiOptions {
    /** `http(s)://host[:port]`; credentials in it are used only when `auth` is absent */
    url: string
    auth?: { user: string; password: string } | { sessionId: string; user?: string; password?: string }
    allowUnauthorized?: boolean
    transport?: 'auto' | 'json-rpc' | 'xml-rpc'
    /** ms; a number, a per-method map (`'*'` for the default) or a function of (method, args) */
    callTimeout?: number | Record<string, number> | ((method: string, args: unknown[]) => number)
    /** inactivity timeout of HTTP requests, ms */
    httpInactivityTimeout?: number
    /** `false` disables the `event.from` loop and the object cache; an array restricts it to these classes */
    watchEvents?: boolean | string[]
    readOnly?: boolean
    syncStackTraces?: boolean
    callConcurrency?: number
    roCallRetryOptions?: { delay?: number; tries?: number }
    eventPollDelay?: number
    debounce?: number
  }

  /** The client's own error type: `code` and `params` as the server sent them. */
  export interface XenApiError extends Error {
    code: string
    params: string[]
    call?: { method: string; params: unknown; duration: number }
    url?: string
    task?: unknown
  }

  export class Xapi extends EventEmitter {
    constructor(options: XenApiOptions)
    readonly status: 'connected' | 'connecting' | 'disconnected'
    /** throws unless connected */
    readonly sessionId: string
    readonly pool: ({ $ref: string } & Record<string, unknown>) | null
    readonly objectsFetched: Promise<void>
    connect(): Promise<void>
    disconnect(): Promise<void>
    call(method: string, ...args: unknown[]): Promise<unknown>
    /** runs `Async.<method>`, waits for its task through the event loop, and parses its result */
    callAsync(method: string, ...args: unknown[]): Promise<unknown>
    watchTask(ref: string): Promise<unknown>
  }

  export const Ref: {
    EMPTY: 'OpaqueRef:NULL'
    isNotEmpty(value: unknown): boolean
    is(value: unknown): boolean
  }

  export function createClient(options: XenApiOptions): Xapi
}
