/**
 * The {@link XvaHandlerContext} of a lab host: its disk context plus what `/export` and
 * `/import` need from the pool's records.
 */
import { diskHandlerContext } from '../http/disk-context.js'
import type { LabSrView, XvaHandlerContext } from '../http/types.js'
import type { LabPool } from '../pool.js'
import { assertVmOperation } from '../rpc/vm-checks.js'
import { formatXapiDate } from '../wire/values.js'
import { xvaExportView } from './export-view.js'
import { importXvaRecords } from './import-records.js'
import { EXPORT_VSN } from './ova-xml.js'

/** The XVA handler context of host `hostRef`; `baseUrlOf` gives a host's `http://address:port`. */
export function xvaHandlerContext(
  pool: LabPool,
  hostRef: string,
  baseUrlOf: (hostRef: string) => string,
): XvaHandlerContext {
  const db = pool.db
  const srView = (ref: string): LabSrView | undefined => {
    const record = db.find('SR', ref)
    return record === undefined
      ? undefined
      : { ref, uuid: record['uuid'] as string, contentType: record['content_type'] as string }
  }
  return {
    ...diskHandlerContext(pool, hostRef, baseUrlOf),
    vmForExport: refOrUuid => xvaExportView(pool, refOrUuid),
    lockVm(vmRef, op, taskRef) {
      assertVmOperation(pool, vmRef, op, ['Halted', 'Suspended'])
      const ops = db.get('VM', vmRef)['current_operations'] as Readonly<Record<string, string>>
      db.update('VM', vmRef, { current_operations: { ...ops, [taskRef]: op } })
      return () => {
        const now = db.find('VM', vmRef)
        if (now === undefined) return
        const rest = { ...(now['current_operations'] as Readonly<Record<string, string>>) }
        delete rest[taskRef]
        db.update('VM', vmRef, { current_operations: rest })
      }
    },
    xvaVersion() {
      const host = db.get('host', hostRef)
      const software = host['software_version'] as Readonly<Record<string, string>>
      return {
        hostname: software['hostname'] ?? (host['hostname'] as string),
        date: software['date'] ?? formatXapiDate(new Date(0)),
        productVersion: software['product_version'] ?? '',
        productBrand: software['product_brand'] ?? '',
        buildNumber: software['build_number'] ?? '',
        xapiMajor: host['API_version_major'] as number,
        xapiMinor: host['API_version_minor'] as number,
        exportVsn: EXPORT_VSN,
      }
    },
    lookupSr(refOrUuid) {
      if (refOrUuid === undefined) return srView(db.get('pool', pool.poolRef)['default_SR'] as string)
      return srView(db.find('SR', refOrUuid) !== undefined ? refOrUuid : (db.findByUuid('SR', refOrUuid) ?? ''))
    },
    redirectForSr(sr) {
      const host = pool.hostForSr(sr.ref)
      if (host === undefined || host === hostRef) return undefined
      const here = db.related('PBD', 'host', hostRef).some(pbd => {
        const record = db.get('PBD', pbd)
        return record['SR'] === sr.ref && record['currently_attached'] === true
      })
      return here ? undefined : baseUrlOf(host)
    },
    importVm: (objects, srRef, options) => importXvaRecords(pool, objects, srRef, options),
  }
}
