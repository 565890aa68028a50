/** The records a plan reads, fetched from one pool in one go. */
import type { XapiClient } from '../xapi/client.js'
import type { RecordOf, Ref } from '../xapi/types.js'

/**
 * VMs, VBDs, VDIs and SRs of one pool, keyed by ref, as whole records: a pass plan
 * (`PoolRecords`) and a seed plan (`SeedRecords`) each read the fields they need from them.
 */
export interface PoolRecordMaps {
  readonly vms: ReadonlyMap<Ref<'VM'>, RecordOf<'VM'>>
  readonly vbds: ReadonlyMap<Ref<'VBD'>, RecordOf<'VBD'>>
  readonly vdis: ReadonlyMap<Ref<'VDI'>, RecordOf<'VDI'>>
  readonly srs: ReadonlyMap<Ref<'SR'>, RecordOf<'SR'>>
}

/** Fetches the four classes concurrently. */
export async function fetchPoolRecords(
  client: XapiClient,
  options: { signal?: AbortSignal } = {},
): Promise<PoolRecordMaps> {
  const [vms, vbds, vdis, srs] = await Promise.all([
    client.getAllRecords('VM', options),
    client.getAllRecords('VBD', options),
    client.getAllRecords('VDI', options),
    client.getAllRecords('SR', options),
  ])
  return { vms, vbds, vdis, srs }
}
