/**
 * What a pool's hosts have served, for tests that must prove how much a client read or asked:
 * bytes of NBD reads and of HTTP exports, per VDI (uuid) where the path names one, and the API
 * calls answered per method with the bytes of their answers. Counters live in memory only and
 * start at zero with the lab; `reset()` starts a measurement afresh.
 */

/** Counters of one pool, as the control API reports them. */
export interface LabTransferStats {
  /** NBD: connections that reached the transmission phase, READ commands answered, their data bytes */
  readonly nbd: {
    readonly connections: number
    readonly reads: number
    readonly bytes: number
    readonly byVdi: Readonly<Record<string, number>>
  }
  /** `GET /export_raw_vdi` (raw or VHD): requests that sent a body, body bytes sent */
  readonly exportRawVdi: {
    readonly requests: number
    readonly bytes: number
    readonly byVdi: Readonly<Record<string, number>>
  }
  /** `GET /export` (XVA): requests that sent a body, body bytes sent (before any gzip) */
  readonly exportXva: { readonly requests: number; readonly bytes: number }
  /**
   * API calls (XML-RPC and JSON-RPC) answered, failures included: in all and per method as the
   * client named it (`Async.VM.clone` apart from `VM.clone`), with the bytes of the answers' bodies
   */
  readonly xapi: {
    readonly calls: number
    readonly bytes: number
    readonly byMethod: Readonly<Record<string, { readonly calls: number; readonly bytes: number }>>
  }
}

function add(map: Record<string, number>, key: string, bytes: number): void {
  map[key] = (map[key] ?? 0) + bytes
}

export class TransferCounters {
  #nbd = { connections: 0, reads: 0, bytes: 0, byVdi: {} as Record<string, number> }
  #raw = { requests: 0, bytes: 0, byVdi: {} as Record<string, number> }
  #xva = { requests: 0, bytes: 0 }
  #xapi = { calls: 0, bytes: 0, byMethod: new Map<string, { calls: number; bytes: number }>() }

  /** One API call answered with a body of `bytes`. */
  rpcCall(method: string, bytes: number): void {
    this.#xapi.calls++
    this.#xapi.bytes += bytes
    const row = this.#xapi.byMethod.get(method)
    if (row === undefined) this.#xapi.byMethod.set(method, { calls: 1, bytes })
    else {
      row.calls++
      row.bytes += bytes
    }
  }

  nbdConnection(): void {
    this.#nbd.connections++
  }

  nbdRead(vdiUuid: string, bytes: number): void {
    this.#nbd.reads++
    this.#nbd.bytes += bytes
    add(this.#nbd.byVdi, vdiUuid, bytes)
  }

  /** One HTTP export finished (completely or not) after sending `bytes` of body. */
  httpExport(kind: 'raw' | 'xva', uuid: string, bytes: number): void {
    if (kind === 'xva') {
      this.#xva.requests++
      this.#xva.bytes += bytes
      return
    }
    this.#raw.requests++
    this.#raw.bytes += bytes
    add(this.#raw.byVdi, uuid, bytes)
  }

  snapshot(): LabTransferStats {
    return {
      nbd: { ...this.#nbd, byVdi: { ...this.#nbd.byVdi } },
      exportRawVdi: { ...this.#raw, byVdi: { ...this.#raw.byVdi } },
      exportXva: { ...this.#xva },
      xapi: {
        calls: this.#xapi.calls,
        bytes: this.#xapi.bytes,
        byMethod: Object.fromEntries([...this.#xapi.byMethod].map(([method, row]) => [method, { ...row }])),
      },
    }
  }

  reset(): void {
    this.#nbd = { connections: 0, reads: 0, bytes: 0, byVdi: {} }
    this.#raw = { requests: 0, bytes: 0, byVdi: {} }
    this.#xva = { requests: 0, bytes: 0 }
    this.#xapi = { calls: 0, bytes: 0, byMethod: new Map() }
  }
}
