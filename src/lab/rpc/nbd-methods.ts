/**
 * What a client needs to read a VDI over NBD, as XAPI's `xapi_vdi.ml` answers it:
 * `VDI.get_nbd_info` lists, for every host with a plugged PBD of the VDI's SR, every address of
 * its attached PIFs on networks whose purpose allows NBD, with the port, the host's certificate
 * and subject, and an export name carrying the caller's session. `network.add_purpose` and
 * `remove_purpose` turn NBD on and off; `host.get_server_certificate` gives a host's certificate.
 */
import { X509Certificate } from 'node:crypto'
import { xapiFault } from '../fault.js'
import type { LabPool } from '../pool.js'
import type { MethodRegistry } from './registry.js'

const PURPOSES = new Set(['nbd', 'insecure_nbd'])

/** Whether NBD is served on this network. */
export function allowsNbd(purpose: readonly string[]): boolean {
  return purpose.includes('nbd') || purpose.includes('insecure_nbd')
}

/** The IPv4 address (then IPv6 ones) of each attached PIF of `hostRef` on a network that allows NBD. */
export function nbdAddresses(pool: LabPool, hostRef: string): string[] {
  return pool.db
    .related('PIF', 'host', hostRef)
    .map(pif => pool.db.get('PIF', pif))
    .filter(
      pif =>
        pif['currently_attached'] === true &&
        allowsNbd(pool.db.get('network', pif['network'] as string)['purpose'] as readonly string[]),
    )
    .flatMap(pif => [pif['IP'] as string, ...(pif['IPv6'] as readonly string[])].filter(ip => ip !== ''))
}

/** XAPI's subject: the first DNS name of the certificate that is not a wildcard, else the last one. */
function subjectOf(pem: string, fallback: string): string {
  try {
    const names = (new X509Certificate(pem).subjectAltName ?? '')
      .split(', ')
      .filter(name => name.startsWith('DNS:'))
      .map(name => name.slice(4))
    return names.find(name => !name.includes('*')) ?? names.at(-1) ?? ''
  } catch {
    return fallback
  }
}

function parsePurpose(value: string): string {
  // an enum outside `network_purpose` fails in XAPI's unmarshaller
  if (!PURPOSES.has(value)) throw xapiFault('INTERNAL_ERROR', `Unknown tag '${value}'`)
  return value
}

export function addNbdMethods(registry: MethodRegistry): void {
  registry.add({
    name: 'VDI.get_nbd_info',
    params: ['string'],
    handler: ({ pool, sessionRef }, [vdi]) => {
      const record = pool.db.get('VDI', vdi as string)
      if (record['type'] === 'cbt_metadata') throw xapiFault('VDI_INCOMPATIBLE_TYPE', vdi as string, 'cbt_metadata')
      const hosts = pool.db
        .related('PBD', 'SR', record['SR'] as string)
        .map(pbd => pool.db.get('PBD', pbd))
        .filter(pbd => pbd['currently_attached'] === true)
        .map(pbd => pbd['host'] as string)
      const exportname = `/${record['uuid'] as string}?session_id=${sessionRef}`
      return hosts.flatMap(host => {
        const addresses = nbdAddresses(pool, host)
        const cert = pool.certificates.get(host)?.certPem ?? ''
        if (addresses.length === 0 || pool.nbdPort === undefined) return []
        const subject = subjectOf(cert, pool.db.get('host', host)['hostname'] as string)
        return addresses.map(address => ({ address, port: pool.nbdPort!, cert, exportname, subject }))
      })
    },
  })
  registry.add({
    name: 'host.get_server_certificate',
    params: ['string'],
    handler: ({ pool }, [host]) => {
      pool.db.get('host', host as string)
      return pool.certificates.get(host as string)?.certPem ?? ''
    },
  })
  registry.add({
    name: 'network.add_purpose',
    params: ['string', 'string'],
    handler: ({ pool }, [network, value]) => {
      const purpose = parsePurpose(value as string)
      const current = pool.db.get('network', network as string)['purpose'] as readonly string[]
      // nbd and insecure_nbd exclude each other across the whole pool
      const other = purpose === 'nbd' ? 'insecure_nbd' : 'nbd'
      for (const [, record] of pool.db.all('network'))
        if ((record['purpose'] as readonly string[]).includes(other))
          throw xapiFault('NETWORK_INCOMPATIBLE_PURPOSES', purpose, other)
      if (!current.includes(purpose)) pool.db.update('network', network as string, { purpose: [...current, purpose] })
      return ''
    },
  })
  registry.add({
    name: 'network.remove_purpose',
    params: ['string', 'string'],
    handler: ({ pool }, [network, value]) => {
      const purpose = parsePurpose(value as string)
      const current = pool.db.get('network', network as string)['purpose'] as readonly string[]
      if (current.includes(purpose))
        pool.db.update('network', network as string, { purpose: current.filter(p => p !== purpose) })
      return ''
    },
  })
}
