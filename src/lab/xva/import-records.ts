/**
 * The records `PUT /import` creates from ova.xml, in the class order of XAPI's `import.ml`
 * handlers (host, SR, VDI, VM, network, VBD, VIF): hosts map to this pool's by uuid; every SR
 * becomes the target SR (ISO SRs are dropped and their CDs ejected); each disk VDI is created
 * empty on the target SR; the VM is created halted with a new uuid and `mac_seed` (both kept
 * with `restore`), `import` in its current_operations until the import completes; networks are
 * matched by uuid, name, then bridge, else the pool's management network; VBDs and VIFs are
 * created with the lab's usual checks. A failure undoes everything created, newest first.
 */
import { randomUUID } from 'node:crypto'
import { NULL_REF } from '../db/database.js'
import type { LabRecord, StoredValue } from '../db/schema.js'
import { xapiFault } from '../fault.js'
import { XvaFormatError } from '../lab-error.js'
import type { LabPool } from '../pool.js'
import { createVbd, createVif } from '../rpc/devices.js'
import { checkSrUsable, destroyVdi } from '../rpc/vdi-methods.js'
import { BLOCK_SIZE } from '../storage/types.js'
import type { LabVdiView } from '../views.js'
import type { DecodedValue } from '../wire/values.js'
import { exportRef, fieldsOf, stringOr } from './ova-fields.js'
import type { OvaObject } from './ova-xml.js'

/** Options of an XVA import (query flags of `PUT /import`). */
export interface XvaImportOptions {
  /** keep the VM's uuid, mac_seed and MACs (replacing a halted VM of that uuid) */
  readonly restore: boolean
  /** skip a running VM to replace, accept bad checksums, keep what was created on failure */
  readonly force: boolean
  /** the import task: key of `current_operations`, value of `other_config.import_task` */
  readonly taskRef: string
}

/** What the import created; the disks still have to be filled. */
export interface XvaImportPlan {
  /** the new VMs (what the task result lists) */
  readonly vmRefs: readonly string[]
  /** the new VDIs to stream into, by export id, with the size ova.xml gives */
  readonly disks: readonly { readonly id: string; readonly size: number; readonly vdi: LabVdiView }[]
  /** takes `import` out of the VMs' current_operations */
  complete(): void
  /** destroys everything created, newest first */
  undo(): Promise<void>
}

type UndoStep = () => Promise<void> | void
type ImportedDisk = XvaImportPlan['disks'][number]

/** What every step of one import shares. */
interface ImportScope {
  readonly pool: LabPool
  readonly srRef: string
  readonly options: XvaImportOptions
  readonly objects: readonly OvaObject<DecodedValue>[]
  /** the objects by export id (`Ref:3`) */
  readonly exported: ReadonlyMap<string, OvaObject<DecodedValue>>
  /** export id → the ref it stands for in this pool */
  readonly table: Map<string, string>
  /** one step per object created, run newest first to undo the import */
  readonly undo: UndoStep[]
}

/** Creates the records of an XVA import on `srRef`; see the file comment. */
export async function importXvaRecords(
  pool: LabPool,
  objects: readonly OvaObject<DecodedValue>[],
  srRef: string,
  options: XvaImportOptions,
): Promise<XvaImportPlan> {
  checkSrUsable(pool, srRef)
  const scope: ImportScope = {
    pool,
    srRef,
    options,
    objects,
    exported: new Map(objects.map(o => [o.id, o])),
    table: new Map(),
    undo: [],
  }
  const streamed = streamedVdis(scope)
  if (options.restore) assertCanRestore(scope)
  let disks: ImportedDisk[]
  let createdVms: string[]
  try {
    mapHostsAndSrs(scope)
    disks = await importVdis(scope, streamed)
    createdVms = importVms(scope)
    mapNetworks(scope)
    importVbds(scope)
    importVifs(scope)
  } catch (error) {
    if (!options.force) await runUndo(scope.undo)
    throw error
  }
  return importPlan(scope, createdVms, disks)
}

function objectsOf(scope: ImportScope, cls: string): OvaObject<DecodedValue>[] {
  return scope.objects.filter(o => o.cls === cls)
}

/** The ref here of what a raw snapshot field names by export id; `OpaqueRef:NULL` for anything else. */
function lookup(scope: ImportScope, id: DecodedValue | undefined): string {
  return typeof id === 'string' ? (scope.table.get(id) ?? NULL_REF) : NULL_REF
}

/** The VDIs whose content the stream carries: those behind a non-CD VBD (import.ml non_cdrom_vdis). */
function streamedVdis(scope: ImportScope): Set<string> {
  return new Set(
    objectsOf(scope, 'VBD')
      .filter(vbd => vbd.snapshot['type'] !== 'CD')
      .map(vbd => exportRef(vbd, 'VDI')),
  )
}

/**
 * import.ml assert_can_restore_backup: a restored VM whose uuid is new here must not bring the
 * mac_seed of a VM that exists (its MACs would clash).
 */
function assertCanRestore(scope: ImportScope): void {
  const { db } = scope.pool
  for (const vm of objectsOf(scope, 'VM')) {
    const uuid = vm.snapshot['uuid']
    const seed = (vm.snapshot['other_config'] as Record<string, DecodedValue> | undefined)?.['mac_seed']
    if (typeof uuid !== 'string' || db.findByUuid('VM', uuid) !== undefined || typeof seed !== 'string') continue
    for (const [ref, record] of db.all('VM')) {
      if ((record['other_config'] as Readonly<Record<string, string>>)['mac_seed'] === seed)
        throw xapiFault('DUPLICATE_VM', ref)
    }
  }
}

/** Hosts map to this pool's by uuid (else NULL); every SR but an ISO one becomes the target SR. */
function mapHostsAndSrs(scope: ImportScope): void {
  const { db } = scope.pool
  for (const host of objectsOf(scope, 'host')) {
    const uuid = host.snapshot['uuid']
    const ref = typeof uuid === 'string' ? db.findByUuid('host', uuid) : undefined
    scope.table.set(host.id, ref ?? NULL_REF)
  }
  for (const sr of objectsOf(scope, 'SR'))
    if (sr.snapshot['content_type'] !== 'iso') scope.table.set(sr.id, scope.srRef)
}

/** Creates each disk VDI empty on the target SR and maps each CD; returns the disks the stream fills. */
async function importVdis(scope: ImportScope, streamed: ReadonlySet<string>): Promise<ImportedDisk[]> {
  const disks: ImportedDisk[] = []
  for (const vdi of objectsOf(scope, 'VDI')) {
    if (isOnIsoSr(scope, vdi)) {
      // a CD: the same ISO (by location) if this pool has it, else the drive is ejected
      const iso = findIso(scope.pool, vdi.snapshot['location'])
      if (iso !== undefined) scope.table.set(vdi.id, iso)
      continue
    }
    const ref = await createVdi(scope, vdi)
    // a CD's VDI is created empty: only disks behind a non-CD VBD are streamed
    if (streamed.has(vdi.id))
      disks.push({ id: vdi.id, size: Number(vdi.snapshot['virtual_size'] ?? 0), vdi: scope.pool.vdiView(ref)! })
  }
  return disks
}

function isOnIsoSr(scope: ImportScope, vdi: OvaObject<DecodedValue>): boolean {
  const sr = vdi.snapshot['SR']
  return typeof sr === 'string' && scope.exported.get(sr)?.snapshot['content_type'] === 'iso'
}

/** This pool's ISO VDI at `location` (the last one, when several are). */
function findIso(pool: LabPool, location: DecodedValue | undefined): string | undefined {
  let found: string | undefined
  for (const [ref, record] of pool.db.all('VDI')) {
    if (record['location'] === location && pool.db.find('SR', record['SR'] as string)?.['content_type'] === 'iso')
      found = ref
  }
  return found
}

async function createVdi(scope: ImportScope, vdi: OvaObject<DecodedValue>): Promise<string> {
  const { pool, srRef, options } = scope
  const fields = fieldsOf(pool.db.spec('VDI'), vdi)
  const size = Math.ceil(((fields['virtual_size'] as number | undefined) ?? 0) / BLOCK_SIZE) * BLOCK_SIZE
  const uuid = randomUUID()
  await pool.storage.create(uuid, size)
  const ref = pool.db.create('VDI', {
    name_label: fields['name_label'] ?? '',
    name_description: fields['name_description'] ?? '',
    type: fields['type'] ?? 'user',
    sharable: fields['sharable'] ?? false,
    read_only: fields['read_only'] ?? false,
    other_config: fields['other_config'] ?? {},
    xenstore_data: fields['xenstore_data'] ?? {},
    tags: fields['tags'] ?? [],
    // XAPI tells the SM backend that this VDI belongs to an import
    sm_config: {
      ...((fields['sm_config'] as Record<string, string> | undefined) ?? {}),
      import_task: options.taskRef,
      vdi_type: 'vhd',
    },
    SR: srRef,
    virtual_size: size,
    uuid,
    location: uuid,
  })
  pool.refreshVdi(ref)
  scope.undo.push(() => destroyVdi(pool, ref))
  scope.table.set(vdi.id, ref)
  return ref
}

/** Creates each VM halted, `import` in its current_operations; returns the new VMs. */
function importVms(scope: ImportScope): string[] {
  const { db } = scope.pool
  const created: string[] = []
  for (const vm of objectsOf(scope, 'VM')) {
    const fields = fieldsOf(db.spec('VM'), vm)
    const uuid = fields['uuid'] as string | undefined
    if (scope.options.restore && uuid !== undefined && !replaceRestoredVm(scope, uuid, fields)) continue
    const ref = db.create('VM', importedVmRecord(scope, vm, fields))
    scope.undo.push(() => {
      for (const vbd of db.related('VBD', 'VM', ref)) db.destroy('VBD', vbd)
      for (const vif of db.related('VIF', 'VM', ref)) db.destroy('VIF', vif)
      if (db.find('VM', ref) !== undefined) db.destroy('VM', ref)
    })
    scope.table.set(vm.id, ref)
    created.push(ref)
  }
  return created
}

/**
 * With `restore`, an existing VM of the same uuid makes way (destroyed with its VBDs and VIFs)
 * if it is halted and older; a running one is `VM_BAD_POWER_STATE`, an older-or-equal import
 * `VM_TO_IMPORT_IS_NOT_NEWER_VERSION`. With `force` a running one is kept and the import of
 * this VM skipped (false), and the version is not compared.
 */
function replaceRestoredVm(scope: ImportScope, uuid: string, fields: Readonly<Record<string, StoredValue>>): boolean {
  const { db } = scope.pool
  const { force } = scope.options
  const existing = db.findByUuid('VM', uuid)
  if (existing === undefined) return true
  const current = db.get('VM', existing)
  const powerState = current['power_state'] as string
  if (powerState !== 'Halted') {
    if (force) return false
    throw xapiFault('VM_BAD_POWER_STATE', existing, 'halted', powerState.toLowerCase())
  }
  const version = (fields['version'] as number | undefined) ?? 0
  const currentVersion = current['version'] as number
  if (currentVersion >= version && !force) {
    throw xapiFault('VM_TO_IMPORT_IS_NOT_NEWER_VERSION', existing, String(currentVersion), String(version))
  }
  for (const vbd of db.related('VBD', 'VM', existing)) db.destroy('VBD', vbd)
  for (const vif of db.related('VIF', 'VM', existing)) db.destroy('VIF', vif)
  db.destroy('VM', existing)
  return true
}

/** The record of an imported VM: the snapshot's fields, with what VM.create forces and a fresh identity unless restored. */
function importedVmRecord(
  scope: ImportScope,
  vm: OvaObject<DecodedValue>,
  fields: Readonly<Record<string, StoredValue>>,
): LabRecord {
  const { restore, force, taskRef } = scope.options
  const otherConfig: Record<string, string> = {
    ...((fields['other_config'] as Record<string, string> | undefined) ?? {}),
  }
  if (!restore || otherConfig['mac_seed'] === undefined) otherConfig['mac_seed'] = randomUUID()
  otherConfig['import_task'] = taskRef
  const record: LabRecord = {
    ...fields,
    other_config: otherConfig,
    power_state: 'Halted',
    // VM.create forces these; the snapshot fields come from the record (false for a plain export)
    blocked_operations: {},
    current_operations: force ? {} : { [taskRef]: 'import' },
    allowed_operations: [],
    version: restore ? ((fields['version'] as number | undefined) ?? 0) + 1 : 0,
    generation_id:
      fields['is_a_template'] === true
        ? ((fields['generation_id'] as string | undefined) ?? '')
        : `${Date.now()}:${Math.floor(Math.random() * 1e9)}`,
    appliance: NULL_REF,
    protection_policy: NULL_REF,
    suspend_VDI: NULL_REF,
    resident_on: lookup(scope, vm.snapshot['resident_on']),
    affinity: lookup(scope, vm.snapshot['affinity']),
    parent: lookup(scope, vm.snapshot['parent']),
    guest_metrics: NULL_REF,
    metrics: NULL_REF,
    domid: -1,
  }
  if (!restore || fields['uuid'] === undefined) delete record['uuid']
  return record
}

function managementNetwork(pool: LabPool): string | undefined {
  for (const [, pif] of pool.db.all('PIF')) if (pif['management'] === true) return pif['network'] as string
  for (const [ref] of pool.db.all('network')) return ref
  return undefined
}

/** Networks are matched by uuid, name, then bridge, else the pool's management network. */
function mapNetworks(scope: ImportScope): void {
  const { pool } = scope
  for (const net of objectsOf(scope, 'network')) {
    const byField = (field: string): string | undefined => {
      const wanted = net.snapshot[field]
      if (typeof wanted !== 'string' || wanted === '') return undefined
      for (const [ref, record] of pool.db.all('network')) if (record[field] === wanted) return ref
      return undefined
    }
    const ref = byField('uuid') ?? byField('name_label') ?? byField('bridge') ?? managementNetwork(pool)
    if (ref !== undefined) scope.table.set(net.id, ref)
  }
}

/** A VBD whose VM was not imported, or whose disk (not a CD, floppy or empty drive) was not, is `XVA_MISSING_OBJECT`. */
function importVbds(scope: ImportScope): void {
  const { pool } = scope
  for (const vbd of objectsOf(scope, 'VBD')) {
    const fields = fieldsOf(pool.db.spec('VBD'), vbd)
    const vmId = exportRef(vbd, 'VM')
    const vmRef = scope.table.get(vmId)
    if (vmRef === undefined) throw new XvaFormatError('XVA_MISSING_OBJECT', vmId, 0)
    const vdiId = exportRef(vbd, 'VDI')
    const vdiRef = scope.table.get(vdiId) ?? NULL_REF
    const type = stringOr(fields, 'type', 'Disk', `VBD ${vbd.id}`)
    const found = vdiRef !== NULL_REF
    if (!found && type !== 'CD' && type !== 'Floppy' && fields['empty'] !== true)
      throw new XvaFormatError('XVA_MISSING_OBJECT', vdiId, 0)
    createVbd(pool, {
      VM: vmRef,
      VDI: found ? vdiRef : NULL_REF,
      userdevice: fields['userdevice'] ?? 'autodetect',
      bootable: fields['bootable'] ?? false,
      mode: fields['mode'] ?? 'RW',
      type,
      empty: !found,
      unpluggable: fields['unpluggable'] ?? true,
      other_config: fields['other_config'] ?? {},
      qos_algorithm_type: fields['qos_algorithm_type'] ?? '',
      qos_algorithm_params: fields['qos_algorithm_params'] ?? {},
    })
  }
}

/** VIFs of imported VMs; a MAC the host made up is made up again from the new mac_seed unless restored. */
function importVifs(scope: ImportScope): void {
  const { pool } = scope
  for (const vif of objectsOf(scope, 'VIF')) {
    const fields = fieldsOf(pool.db.spec('VIF'), vif)
    const vmRef = scope.table.get(exportRef(vif, 'VM'))
    const network = scope.table.get(exportRef(vif, 'network')) ?? managementNetwork(pool)
    if (vmRef === undefined || network === undefined) continue
    // a MAC the host made up is made up again from the new mac_seed; a chosen one is kept
    const keepMac = scope.options.restore || fields['MAC_autogenerated'] !== true
    createVif(pool, {
      VM: vmRef,
      network,
      device: fields['device'] ?? '0',
      MAC: keepMac ? (fields['MAC'] ?? '') : '',
      MTU: fields['MTU'] ?? 1500,
      other_config: fields['other_config'] ?? {},
      qos_algorithm_type: fields['qos_algorithm_type'] ?? '',
      qos_algorithm_params: fields['qos_algorithm_params'] ?? {},
      locking_mode: fields['locking_mode'] ?? 'network_default',
      ipv4_allowed: fields['ipv4_allowed'] ?? [],
      ipv6_allowed: fields['ipv6_allowed'] ?? [],
    })
  }
}

function importPlan(scope: ImportScope, createdVms: readonly string[], disks: readonly ImportedDisk[]): XvaImportPlan {
  const { db } = scope.pool
  const { taskRef } = scope.options
  return {
    vmRefs: createdVms.filter(ref => db.find('VM', ref)?.['is_a_snapshot'] !== true),
    disks,
    complete() {
      for (const ref of createdVms) {
        const vm = db.find('VM', ref)
        if (vm === undefined) continue
        const ops = { ...(vm['current_operations'] as Readonly<Record<string, string>>) }
        delete ops[taskRef]
        db.update('VM', ref, { current_operations: ops })
      }
    },
    undo: () => runUndo(scope.undo),
  }
}

async function runUndo(steps: (() => Promise<void> | void)[]): Promise<void> {
  for (const step of steps.reverse()) {
    try {
      await step()
    } catch {
      // best effort, as XAPI's cleanup: one failing step must not keep the others from running
    }
  }
  steps.length = 0
}
