/** The records a plan reads, fetched from one pool in one go. */
import type { XapiClient } from '../xapi/client.js'
import type { PoolRecords } from './plan.js'

/** VMs, VBDs, VDIs and SRs of one pool, keyed by ref. */
export async function fetchPoolRecords(client: XapiClient, options: { signal?: AbortSignal } = {}): Promise<PoolRecords> {
  const [vms, vbds, vdis, srs] = await Promise.all([
    client.getAllRecords('VM', options),
    client.getAllRecords('VBD', options),
    client.getAllRecords('VDI', options),
    client.getAllRecords('SR', options),
  ])
  return { vms, vbds, vdis, srs }
}
