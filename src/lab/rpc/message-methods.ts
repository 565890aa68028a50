/**
 * XAPI's messages (alerts for the administrator), as xapi_message.ml serves them: created for an
 * object of one of the `cls` enum's classes, read whole (get_all_records, get_since, get by
 * object), destroyed. The lab raises none itself; clients such as xen-api's object cache read
 * them (an empty pool answers `{}`), and a client may create its own.
 */
import { xapiFault } from '../fault.js'
import type { LabPool } from '../pool.js'
import { formatXapiDate, type WireValue } from '../wire/values.js'
import type { MethodRegistry } from './registry.js'
import { enumValue } from './vm-settings.js'

/** The `cls` enum and the lab class its objects belong to. */
const CLASSES: Readonly<Record<string, string | undefined>> = {
  VM: 'VM',
  Host: 'host',
  SR: 'SR',
  Pool: 'pool',
  VMPP: undefined,
  VMSS: undefined,
  PVS_proxy: undefined,
  VDI: 'VDI',
}

function records(
  pool: LabPool,
  keep: (record: Readonly<Record<string, unknown>>) => boolean,
): Record<string, WireValue> {
  const out: Record<string, WireValue> = {}
  for (const [ref, record] of pool.db.all('message')) if (keep(record)) out[ref] = pool.db.toWire('message', ref)
  return out
}

/** XAPI's datetime strings compare as text: `yyyymmddThh:mm:ssZ`. */
const after = (since: Date) => (record: Readonly<Record<string, unknown>>) =>
  (record['timestamp'] as string) > formatXapiDate(since)

export function addMessageMethods(registry: MethodRegistry): void {
  registry.add({
    name: 'message.create',
    params: ['string', 'int', 'string', 'string', 'string'],
    handler: ({ pool }, [name, priority, cls, objUuid, body]) => {
      const wire = enumValue('cls', Object.keys(CLASSES), cls as string)
      const labClass = CLASSES[wire]
      if (labClass === undefined || pool.db.findByUuid(labClass, objUuid as string) === undefined)
        throw xapiFault('UUID_INVALID', wire, objUuid as string)
      return pool.db.create('message', {
        name: name as string,
        priority: priority as number,
        cls: wire,
        obj_uuid: objUuid as string,
        timestamp: formatXapiDate(new Date()),
        body: body as string,
      })
    },
  })
  registry.add({
    name: 'message.destroy',
    params: ['string'],
    handler: ({ pool }, [ref]) => {
      pool.db.destroy('message', ref as string)
      return ''
    },
  })
  registry.add({
    name: 'message.get',
    params: ['string', 'string', 'datetime'],
    handler: ({ pool }, [cls, objUuid, since]) => {
      const wire = enumValue('cls', Object.keys(CLASSES), cls as string)
      const newer = after(since as Date)
      return records(pool, r => r['cls'] === wire && r['obj_uuid'] === objUuid && newer(r))
    },
  })
  registry.add({
    name: 'message.get_since',
    params: ['datetime'],
    handler: ({ pool }, [since]) => records(pool, after(since as Date)),
  })
  registry.add({
    name: 'message.get_all',
    params: [],
    handler: ({ pool }) => [...pool.db.all('message')].map(([ref]) => ref),
  })
  registry.add({
    name: 'message.get_all_records',
    params: [],
    handler: ({ pool }) => records(pool, () => true),
  })
  // "The expression to match (not currently used)": xapi_message.ml returns every message.
  registry.add({
    name: 'message.get_all_records_where',
    params: ['string'],
    handler: ({ pool }) => records(pool, () => true),
  })
  registry.add({
    name: 'message.get_record',
    params: ['string'],
    handler: ({ pool }, [ref]) => pool.db.toWire('message', ref as string),
  })
  registry.add({
    name: 'message.get_by_uuid',
    params: ['string'],
    handler: ({ pool }, [uuid]) => pool.db.byUuid('message', uuid as string),
  })
}
