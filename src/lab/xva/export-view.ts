/**
 * What `GET /export` writes about a lab VM, as XAPI's `export.ml` selects it: the VM, its VIFs
 * and their networks, its VBDs with their VDIs and SRs, and the hosts it points at; each object
 * gets an export id `Ref:<n>` in that walk order, refs between exported objects become those ids
 * and refs to anything else `OpaqueRef:NULL` (so no dangling pointers leave the pool). A plain
 * export is not a metadata export: the VM record loses its snapshot fields and power state.
 */
import { NULL_REF } from '../db/database.js'
import type { LabPool } from '../pool.js'
import type { LabVdiView } from '../views.js'
import { EPOCH, WireDateTime, type WireValue } from '../wire/values.js'
import type { OvaObject } from './ova-xml.js'

/** A VM ready to be written as an XVA. */
export interface XvaExportView {
  readonly vmRef: string
  readonly vmUuid: string
  /** ova.xml's objects, in XAPI's class order (hosts, VMs, VBDs, VIFs, networks, VDIs, SRs) */
  readonly objects: readonly OvaObject[]
  /** the disks whose chunks follow ova.xml, in stream order (export ids sorted as strings) */
  readonly disks: readonly { readonly id: string; readonly vdi: LabVdiView }[]
}

type Record_ = { [key: string]: WireValue }

/** The VM named by ref or uuid as an XVA export, or undefined when there is no such VM. */
export function xvaExportView(pool: LabPool, refOrUuid: string): XvaExportView | undefined {
  const db = pool.db
  const vmRef = db.find('VM', refOrUuid) !== undefined ? refOrUuid : db.findByUuid('VM', refOrUuid)
  if (vmRef === undefined) return undefined

  // ref → export id, in the order export.ml's update_table walks the graph
  const table = new Map<string, string>()
  const classOf = new Map<string, string>()
  const add = (cls: string, ref: string): void => {
    if (pool.isNull(ref) || db.find(cls, ref) === undefined || table.has(ref)) return
    table.set(ref, `Ref:${table.size}`)
    classOf.set(ref, cls)
  }
  const vm = db.get('VM', vmRef)
  add('VM', vmRef)
  for (const vif of db.related('VIF', 'VM', vmRef)) {
    add('VIF', vif)
    add('network', db.get('VIF', vif)['network'] as string)
  }
  for (const vbd of db.related('VBD', 'VM', vmRef)) {
    add('VBD', vbd)
    const record = db.get('VBD', vbd)
    if (record['empty'] === true) continue
    const vdi = record['VDI'] as string
    add('VDI', vdi)
    const vdiRecord = db.find('VDI', vdi)
    if (vdiRecord !== undefined) add('SR', vdiRecord['SR'] as string)
  }
  add('host', vm['resident_on'] as string)
  add('host', vm['affinity'] as string)

  const lookup = (ref: WireValue | undefined): string =>
    typeof ref === 'string' ? (table.get(ref) ?? NULL_REF) : NULL_REF
  const filter = (refs: WireValue | undefined): string[] =>
    Array.isArray(refs) ? (refs as WireValue[]).map(lookup).filter(id => id !== NULL_REF) : []
  const cleared = { current_operations: {}, allowed_operations: [] }

  const transform: Record<string, (record: Record_) => Record_> = {
    host: r => ({
      ...r,
      PIFs: [],
      PBDs: [],
      PGPUs: [],
      PCIs: [],
      host_CPUs: [],
      license_params: {},
      blobs: {},
      external_auth_type: '',
      external_auth_service_name: '',
      external_auth_configuration: {},
      metrics: NULL_REF,
      patches: [],
      crashdumps: [],
      logging: {},
      supported_bootloaders: [],
      cpu_configuration: {},
      other_config: {},
      capabilities: [],
      software_version: {},
      sched_policy: '',
      ha_statefiles: [],
      ha_network_peers: [],
      tags: [],
      crash_dump_sr: lookup(r['crash_dump_sr']),
      suspend_image_sr: lookup(r['suspend_image_sr']),
      resident_VMs: filter(r['resident_VMs']),
    }),
    VM: r => ({
      ...r,
      ...cleared,
      power_state: 'Halted',
      suspend_VDI: NULL_REF,
      is_a_snapshot: false,
      snapshot_of: NULL_REF,
      snapshots: [],
      snapshot_time: new WireDateTime(EPOCH),
      transportable_snapshot_id: '',
      parent: NULL_REF,
      VIFs: filter(r['VIFs']),
      VBDs: filter(r['VBDs']),
      VGPUs: [],
      crash_dumps: [],
      VTPMs: [],
      resident_on: lookup(r['resident_on']),
      affinity: lookup(r['affinity']),
      consoles: [],
      metrics: NULL_REF,
      guest_metrics: lookup(r['guest_metrics']),
      protection_policy: NULL_REF,
      blobs: {},
    }),
    VBD: r => ({
      ...r,
      ...cleared,
      currently_attached: false,
      VDI: lookup(r['VDI']),
      VM: lookup(r['VM']),
      metrics: NULL_REF,
    }),
    VIF: r => ({
      ...r,
      ...cleared,
      currently_attached: false,
      network: lookup(r['network']),
      VM: lookup(r['VM']),
      metrics: NULL_REF,
    }),
    network: r => ({ ...r, ...cleared, VIFs: filter(r['VIFs']), PIFs: [] }),
    // export.ml rewrites only these VDI refs; snapshot_of and the rest go out as they are
    VDI: r => ({ ...r, ...cleared, VBDs: filter(r['VBDs']), crash_dumps: [], SR: lookup(r['SR']) }),
    SR: r => ({ ...r, ...cleared, VDIs: filter(r['VDIs']), PBDs: [] }),
  }

  const objects: OvaObject[] = []
  for (const cls of ['host', 'VM', 'VBD', 'VIF', 'network', 'VDI', 'SR']) {
    for (const [ref, id] of table) {
      if (classOf.get(ref) !== cls) continue
      objects.push({ cls, id, snapshot: transform[cls]!({ ...db.toWire(cls, ref) }) })
    }
  }

  // Disks that are streamed: not CDs, not on ISO SRs, sorted on the export id as a string
  // (stream_vdi.ml's vdi_ordering), so Ref:10 comes before Ref:2, on both sides.
  const disks: { id: string; vdi: LabVdiView }[] = []
  for (const vbd of db.related('VBD', 'VM', vmRef)) {
    const record = db.get('VBD', vbd)
    if (record['type'] === 'CD' || record['empty'] === true) continue
    const vdi = pool.vdiView(record['VDI'] as string)
    if (vdi === undefined || db.find('SR', vdi.srRef)?.['content_type'] === 'iso') continue
    const id = table.get(vdi.ref)
    if (id !== undefined && !disks.some(d => d.id === id)) disks.push({ id, vdi })
  }
  disks.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return { vmRef, vmUuid: vm['uuid'] as string, objects, disks }
}
