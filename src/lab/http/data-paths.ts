/**
 * The HTTP data paths every lab host mounts, by method and path prefix (longest prefix wins,
 * so `/export_raw_vdi/` with XO's trailing slash lands here too). Handlers of new data paths
 * (XVA `/export`, `/import`) are added to this list.
 */
import { exportRawVdi } from './export-raw-vdi.js'
import { importRawVdi } from './import-raw-vdi.js'
import { exportXva } from './export-xva.js'
import { importXva } from './import-xva.js'
import type { DiskHandler, XvaHandler } from './types.js'

/** Every handler is called with the host's `XvaHandlerContext`, a superset of the disk context. */
export const DATA_PATHS: readonly {
  readonly method: string
  readonly prefix: string
  readonly handler: DiskHandler | XvaHandler
}[] = [
  { method: 'GET', prefix: '/export_raw_vdi', handler: exportRawVdi },
  { method: 'PUT', prefix: '/import_raw_vdi', handler: importRawVdi },
  // XVA; `/export_raw_vdi` and `/import_raw_vdi` stay theirs because the longer prefix wins
  { method: 'GET', prefix: '/export', handler: exportXva },
  { method: 'PUT', prefix: '/import', handler: importXva },
]
