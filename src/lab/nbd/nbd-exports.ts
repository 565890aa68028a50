/**
 * How a lab host's NBD server (XAPI's `xapi-nbd`) decides about a connection: NBD is served
 * only on an address of a network whose purpose allows it (else the connection is dropped, as
 * the host firewall does), with TLS required when that purpose is `nbd` and refused when it is
 * `insecure_nbd`. An export name is XAPI's `/<vdi uuid>?session_id=<session ref>`: the session
 * must be valid and the VDI's SR plugged on this host; reads are the disk as the guest sees it,
 * the same bytes `/export_raw_vdi?format=raw` sends.
 */
import { createSecureContext, type SecureContext } from 'node:tls'
import type { LabPool } from '../pool.js'
import { nbdAddresses } from '../rpc/nbd-methods.js'
import type { NbdConnectionHost, NbdOpenResult } from './connection.js'

/** The VDI uuid an export name names, after the session check; reasons are sent to the client as text. */
function openExport(pool: LabPool, hostRef: string, exportName: string): NbdOpenResult & { uuid?: string } {
  let url: URL
  try {
    url = new URL(exportName, 'nbd://lab.invalid')
  } catch {
    return { ok: false, reason: 'unknown', message: `export name ${JSON.stringify(exportName)} is not a VDI path` }
  }
  const session = url.searchParams.get('session_id')
  if (session === null) return { ok: false, reason: 'denied', message: 'No session_id parameter provided' }
  if (!pool.isSession(session)) return { ok: false, reason: 'denied', message: `SESSION_INVALID ${session}` }
  const uuid = decodeURIComponent(url.pathname.slice(1))
  const vdi = pool.vdiView(pool.db.findByUuid('VDI', uuid) ?? '')
  if (vdi === undefined || vdi.uuid !== uuid)
    return { ok: false, reason: 'unknown', message: `UUID_INVALID VDI ${uuid}` }
  const plugged = pool.db
    .related('PBD', 'host', hostRef)
    .map(pbd => pool.db.get('PBD', pbd))
    .some(pbd => pbd['SR'] === vdi.srRef && pbd['currently_attached'] === true)
  if (!plugged) return { ok: false, reason: 'unknown', message: `the SR of VDI ${uuid} is not plugged on this host` }
  const size = pool.storage.info(vdi.diskId)?.virtualSize
  if (size === undefined) return { ok: false, reason: 'unknown', message: `VDI ${uuid} has no disk` }
  return {
    ok: true,
    uuid,
    export: { size, read: (offset, length) => pool.storage.read(vdi.diskId, offset, length) },
  }
}

/** The rules for a connection accepted at `address` by host `hostRef`, or undefined to drop it. */
export function nbdConnectionHost(pool: LabPool, hostRef: string, address: string): NbdConnectionHost | undefined {
  if (!nbdAddresses(pool, hostRef).includes(address)) return undefined
  const identity = pool.certificates.get(hostRef)
  if (identity === undefined) return undefined
  const purposes = [...pool.db.all('network')].flatMap(([, network]) => network['purpose'] as readonly string[])
  let secureContext: SecureContext | undefined
  const vdiOf = new Map<string, string>()
  return {
    tls: purposes.includes('nbd') ? 'required' : 'refused',
    get secureContext() {
      return (secureContext ??= createSecureContext({ cert: identity.certPem, key: identity.keyPem }))
    },
    open(exportName) {
      const result = openExport(pool, hostRef, exportName)
      if (result.ok) vdiOf.set(exportName, result.uuid!)
      return result
    },
    opened: () => pool.stats.nbdConnection(),
    served: (exportName, bytes) => pool.stats.nbdRead(vdiOf.get(exportName) ?? '', bytes),
  }
}
