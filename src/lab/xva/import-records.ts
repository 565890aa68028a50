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
import { XvaError } from '../../errors.js'
import { apiError, NULL_REF } from '../db/database.js'
import type { FieldSpec, LabRecord, StoredValue } from '../db/schema.js'
import type { LabVdiView } from '../http/types.js'
import type { LabPool } from '../pool.js'
import { createVbd, createVif } from '../rpc/devices.js'
import { checkSrUsable, destroyVdi } from '../rpc/vdi-methods.js'
import { BLOCK_SIZE } from '../storage/types.js'
import { formatXapiDate, type DecodedValue } from '../wire/values.js'
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

type Snapshot = { readonly [key: string]: DecodedValue }

/** The lab's stored form of a decoded ova.xml field of this type; `XVA_BAD_METADATA` if it does not fit. */
function stored(field: FieldSpec, value: DecodedValue, where: string): StoredValue {
  const bad = (): never => {
    throw new XvaError('XVA_BAD_METADATA', `ova.xml: ${where}.${field.name} is not a ${field.type.kind}`, 0)
  }
  const asString = (v: DecodedValue): string =>
    typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : bad()
  switch (field.type.kind) {
    case 's':
    case 'r':
      return asString(value)
    case 'i':
    case 'f': {
      const n =
        typeof value === 'number'
          ? value
          : typeof value === 'string' && value.trim() !== ''
            ? Number(value)
            : Number.NaN
      return Number.isFinite(n) ? n : bad()
    }
    case 'b':
      return typeof value === 'boolean'
        ? value
        : value === 'true' || value === '1'
          ? true
          : value === 'false' || value === '0'
            ? false
            : bad()
    case 'd':
      return value instanceof Date ? formatXapiDate(value) : asString(value)
    case 'ss':
    case 'sr':
      return Array.isArray(value) ? value.map(asString) : bad()
    case 'si':
      return Array.isArray(value) ? value.map(v => Number(asString(v))) : bad()
    case 'm': {
      if (
        typeof value !== 'object' ||
        value === null ||
        Array.isArray(value) ||
        value instanceof Date ||
        Buffer.isBuffer(value)
      )
        return bad()
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, asString(v)]))
    }
    case 'rel':
      return bad()
  }
}

/** The stored fields of `cls` that the snapshot carries (computed set fields left out). */
function fieldsOf(pool: LabPool, cls: string, object: OvaObject<DecodedValue>): Record<string, StoredValue> {
  const out: Record<string, StoredValue> = {}
  for (const field of pool.db.spec(cls).fields) {
    const value = object.snapshot[field.name]
    if (field.type.kind === 'rel' || value === undefined || value === null) continue
    out[field.name] = stored(field, value, `${cls} ${object.id}`)
  }
  return out
}

function managementNetwork(pool: LabPool): string | undefined {
  for (const [, pif] of pool.db.all('PIF')) if (pif['management'] === true) return pif['network'] as string
  return pool.db.all('network').next().value?.[0]
}

/** Creates the records of an XVA import on `srRef`; see the file comment. */
export async function importXvaRecords(
  pool: LabPool,
  objects: readonly OvaObject<DecodedValue>[],
  srRef: string,
  options: XvaImportOptions,
): Promise<XvaImportPlan> {
  const db = pool.db
  checkSrUsable(pool, srRef)
  const table = new Map<string, string>()
  const exported = new Map(objects.map(o => [o.id, o]))
  const undo: (() => Promise<void> | void)[] = []
  const createdVms: string[] = []
  const disks: { id: string; size: number; vdi: LabVdiView }[] = []
  const of = (cls: string): OvaObject<DecodedValue>[] => objects.filter(o => o.cls === cls)
  const isIsoSr = (id: DecodedValue | undefined): boolean =>
    typeof id === 'string' && exported.get(id)?.snapshot['content_type'] === 'iso'
  const lookup = (id: DecodedValue | undefined): string =>
    typeof id === 'string' ? (table.get(id) ?? NULL_REF) : NULL_REF
  const streamed = new Set(
    of('VBD')
      .filter(vbd => vbd.snapshot['type'] !== 'CD')
      .map(vbd => String(vbd.snapshot['VDI'])),
  )

  if (options.restore) {
    // import.ml assert_can_restore_backup: a restored VM whose uuid is new here must not bring
    // the mac_seed of a VM that exists (its MACs would clash)
    for (const vm of of('VM')) {
      const uuid = vm.snapshot['uuid']
      const seed = (vm.snapshot['other_config'] as Record<string, DecodedValue> | undefined)?.['mac_seed']
      if (typeof uuid !== 'string' || db.findByUuid('VM', uuid) !== undefined || typeof seed !== 'string') continue
      for (const [ref, record] of db.all('VM')) {
        if ((record['other_config'] as Readonly<Record<string, string>>)['mac_seed'] === seed)
          throw apiError('DUPLICATE_VM', ref)
      }
    }
  }
  try {
    for (const host of of('host')) {
      const ref = typeof host.snapshot['uuid'] === 'string' ? db.findByUuid('host', host.snapshot['uuid']) : undefined
      table.set(host.id, ref ?? NULL_REF)
    }
    for (const sr of of('SR')) if (sr.snapshot['content_type'] !== 'iso') table.set(sr.id, srRef)

    for (const vdi of of('VDI')) {
      if (isIsoSr(vdi.snapshot['SR'])) {
        // a CD: the same ISO (by location) if this pool has it, else the drive is ejected
        const location = vdi.snapshot['location']
        for (const [ref, record] of db.all('VDI')) {
          if (record['location'] === location && db.find('SR', record['SR'] as string)?.['content_type'] === 'iso')
            table.set(vdi.id, ref)
        }
        continue
      }
      const fields = fieldsOf(pool, 'VDI', vdi)
      const size = Math.ceil(((fields['virtual_size'] as number | undefined) ?? 0) / BLOCK_SIZE) * BLOCK_SIZE
      const uuid = randomUUID()
      await pool.storage.create(uuid, size)
      const ref = db.create('VDI', {
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
      undo.push(() => destroyVdi(pool, ref))
      table.set(vdi.id, ref)
      // only disks behind a non-CD VBD are streamed (import.ml non_cdrom_vdis); a CD's VDI is created empty
      if (streamed.has(vdi.id))
        disks.push({ id: vdi.id, size: Number(vdi.snapshot['virtual_size'] ?? 0), vdi: pool.vdiView(ref)! })
    }

    for (const vm of of('VM')) {
      const fields = fieldsOf(pool, 'VM', vm)
      const uuid = fields['uuid'] as string | undefined
      if (options.restore && uuid !== undefined) {
        const existing = db.findByUuid('VM', uuid)
        if (existing !== undefined) {
          const current = db.get('VM', existing)
          if (current['power_state'] !== 'Halted') {
            if (options.force) continue
            throw apiError('VM_BAD_POWER_STATE', existing, 'halted', String(current['power_state']).toLowerCase())
          }
          const version = (fields['version'] as number | undefined) ?? 0
          if ((current['version'] as number) >= version && !options.force) {
            throw apiError('VM_TO_IMPORT_IS_NOT_NEWER_VERSION', existing, String(current['version']), String(version))
          }
          for (const vbd of db.related('VBD', 'VM', existing)) db.destroy('VBD', vbd)
          for (const vif of db.related('VIF', 'VM', existing)) db.destroy('VIF', vif)
          db.destroy('VM', existing)
        }
      }
      const otherConfig: Record<string, string> = {
        ...((fields['other_config'] as Record<string, string> | undefined) ?? {}),
      }
      if (!options.restore || otherConfig['mac_seed'] === undefined) otherConfig['mac_seed'] = randomUUID()
      otherConfig['import_task'] = options.taskRef
      const record: LabRecord = {
        ...fields,
        other_config: otherConfig,
        power_state: 'Halted',
        // VM.create forces these; the snapshot fields come from the record (false for a plain export)
        blocked_operations: {},
        current_operations: options.force ? {} : { [options.taskRef]: 'import' },
        allowed_operations: [],
        version: options.restore ? ((fields['version'] as number | undefined) ?? 0) + 1 : 0,
        generation_id:
          fields['is_a_template'] === true
            ? ((fields['generation_id'] as string | undefined) ?? '')
            : `${Date.now()}:${Math.floor(Math.random() * 1e9)}`,
        appliance: NULL_REF,
        protection_policy: NULL_REF,
        suspend_VDI: NULL_REF,
        resident_on: lookup(vm.snapshot['resident_on']),
        affinity: lookup(vm.snapshot['affinity']),
        parent: lookup(vm.snapshot['parent']),
        guest_metrics: NULL_REF,
        metrics: NULL_REF,
        domid: -1,
      }
      if (!options.restore || uuid === undefined) delete record['uuid']
      const ref = db.create('VM', record)
      undo.push(() => {
        for (const vbd of db.related('VBD', 'VM', ref)) db.destroy('VBD', vbd)
        for (const vif of db.related('VIF', 'VM', ref)) db.destroy('VIF', vif)
        if (db.find('VM', ref) !== undefined) db.destroy('VM', ref)
      })
      table.set(vm.id, ref)
      createdVms.push(ref)
    }

    for (const net of of('network')) {
      const byField = (field: string): string | undefined => {
        const wanted = net.snapshot[field]
        if (typeof wanted !== 'string' || wanted === '') return undefined
        for (const [ref, record] of db.all('network')) if (record[field] === wanted) return ref
        return undefined
      }
      const ref = byField('uuid') ?? byField('name_label') ?? byField('bridge') ?? managementNetwork(pool)
      if (ref !== undefined) table.set(net.id, ref)
    }

    for (const vbd of of('VBD')) {
      const fields = fieldsOf(pool, 'VBD', vbd)
      const vmRef = table.get(String(vbd.snapshot['VM']))
      if (vmRef === undefined) throw new XvaError('XVA_MISSING_OBJECT', String(vbd.snapshot['VM']), 0)
      const vdiRef = lookup(vbd.snapshot['VDI'])
      const type = String(fields['type'] ?? 'Disk')
      const found = vdiRef !== NULL_REF
      if (!found && type !== 'CD' && type !== 'Floppy' && fields['empty'] !== true)
        throw new XvaError('XVA_MISSING_OBJECT', String(vbd.snapshot['VDI']), 0)
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

    for (const vif of of('VIF')) {
      const fields = fieldsOf(pool, 'VIF', vif)
      const vmRef = table.get(String(vif.snapshot['VM']))
      const network = table.get(String(vif.snapshot['network'])) ?? managementNetwork(pool)
      if (vmRef === undefined || network === undefined) continue
      // a MAC the host made up is made up again from the new mac_seed; a chosen one is kept
      const keepMac = options.restore || fields['MAC_autogenerated'] !== true
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
  } catch (error) {
    if (!options.force) await runUndo(undo)
    throw error
  }

  return {
    vmRefs: createdVms.filter(ref => db.find('VM', ref)?.['is_a_snapshot'] !== true),
    disks,
    complete() {
      for (const ref of createdVms) {
        const vm = db.find('VM', ref)
        if (vm === undefined) continue
        const ops = { ...(vm['current_operations'] as Readonly<Record<string, string>>) }
        delete ops[options.taskRef]
        db.update('VM', ref, { current_operations: ops })
      }
    },
    undo: () => runUndo(undo),
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
