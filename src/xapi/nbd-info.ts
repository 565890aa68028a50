/** `VDI.get_nbd_info`: where a disk can be read over NBD, and with which host certificate. */
import type { CallOptions, XapiClient } from './client.js'
import type { Ref } from './types.js'

/** One entry of `VDI.get_nbd_info` (XAPI's `vdi_nbd_server_info`). */
export interface NbdExportInfo {
  /** the export to ask for; it carries the session, so it is a secret like the session id */
  readonly exportname: string
  readonly address: string
  readonly port: number
  /** the host's TLS certificate, PEM */
  readonly cert: string
  /** the name the certificate was issued for */
  readonly subject: string
}

function isString(value: unknown): value is string {
  return typeof value === 'string'
}

/**
 * The NBD endpoints XAPI offers for `vdi`, one per host that can serve it. Empty when no network
 * of the pool has NBD enabled. An entry missing a field is dropped rather than half used.
 */
export async function getNbdInfo(
  client: XapiClient,
  vdi: Ref<'VDI'>,
  options: CallOptions = {},
): Promise<NbdExportInfo[]> {
  const raw = await client.call<unknown>('VDI.get_nbd_info', [vdi], options)
  if (!Array.isArray(raw)) return []
  const out: NbdExportInfo[] = []
  for (const entry of raw as unknown[]) {
    if (typeof entry !== 'object' || entry === null) continue
    const e = entry as Record<string, unknown>
    // XML-RPC carries ints as strings
    const port = typeof e['port'] === 'string' ? Number(e['port']) : e['port']
    if (
      !isString(e['exportname']) ||
      !isString(e['address']) ||
      typeof port !== 'number' ||
      !Number.isInteger(port) ||
      !isString(e['cert'])
    )
      continue
    out.push({
      exportname: e['exportname'],
      address: e['address'],
      port,
      cert: e['cert'],
      subject: isString(e['subject']) ? e['subject'] : '',
    })
  }
  return out
}
