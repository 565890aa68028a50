/**
 * The HTTP data paths every lab host mounts, by method and path prefix (longest prefix wins,
 * so `/export_raw_vdi/` with XO's trailing slash lands here too). Handlers of new data paths
 * (XVA `/export`, `/import`) are added to this list.
 */
import { exportRawVdi } from './export-raw-vdi.js'
import { importRawVdi } from './import-raw-vdi.js'
import type { DiskHandler } from './types.js'

export const DATA_PATHS: readonly { readonly method: string; readonly prefix: string; readonly handler: DiskHandler }[] = [
  { method: 'GET', prefix: '/export_raw_vdi', handler: exportRawVdi },
  { method: 'PUT', prefix: '/import_raw_vdi', handler: importRawVdi },
]
