/**
 * VDI messages (reference §4.4) on top of the pool's {@link DiskStore}: the VDI uuid is its disk
 * id and its `location`; snapshot and clone are copy-on-write in the store.
 */
import { randomUUID } from 'node:crypto'
import { BLOCK_SIZE } from '../storage/types.js'
import { NULL_REF } from '../db/database.js'
import { xapiFault } from '../fault.js'
import type { LabRecord, StoredValue } from '../db/schema.js'
import type { LabPool } from '../pool.js'
import { formatXapiDate, EPOCH } from '../wire/values.js'
import type { MethodRegistry } from './registry.js'
import { readStruct, stringMember } from './struct-args.js'
import { withOperation } from './vm-checks.js'

const VDI_TYPES = new Set([
  'system',
  'user',
  'ephemeral',
  'suspend',
  'crashdump',
  'ha_statefile',
  'metadata',
  'redo_log',
  'rrd',
  'pvs_cache',
  'cbt_metadata',
])

/** VHD-based SRs round virtual sizes up to whole 2 MiB blocks (SM behaviour). */
function roundSize(size: number): number {
  return Math.ceil(size / BLOCK_SIZE) * BLOCK_SIZE
}

/** xapi_vdi.check_operation_error: an unmanaged VDI (a base copy) allows no operation but forget. */
function checkManaged(pool: LabPool, vdiRef: string): void {
  if (pool.db.get('VDI', vdiRef)['managed'] === false) throw xapiFault('VDI_NOT_MANAGED', vdiRef)
}

export function checkSrUsable(pool: LabPool, srRef: string): void {
  pool.db.get('SR', srRef)
  if (!pool.srHasPbd(srRef)) throw xapiFault('SR_HAS_NO_PBDS', srRef)
}

/** The metadata a snapshot or clone takes from its source VDI. */
function copiedFields(source: Readonly<LabRecord>): Record<string, StoredValue> {
  const fields: Record<string, StoredValue> = {}
  for (const name of [
    'name_label',
    'name_description',
    'type',
    'sharable',
    'read_only',
    'other_config',
    'xenstore_data',
    'on_boot',
    'allow_caching',
    'tags',
    'SR',
    'virtual_size',
  ]) {
    fields[name] = source[name]!
  }
  return fields
}

/** `alsoChanged`: VDIs whose disks changed with it (a snapshot's or clone's source), refreshed together. */
function createVdiRecord(
  pool: LabPool,
  fields: Record<string, StoredValue>,
  uuid: string,
  alsoChanged: readonly string[] = [],
): string {
  const ref = pool.db.create('VDI', {
    ...fields,
    uuid,
    location: uuid,
    sm_config: { ...((fields['sm_config'] as Record<string, string> | undefined) ?? {}), vdi_type: 'vhd' },
  })
  pool.refreshVdi(ref, ...alsoChanged)
  return ref
}

/**
 * A VM's memory image for a checkpoint or suspend: a `suspend` VDI the size of its static
 * maximum (thin: it takes one block until written) on the SR helpers.choose_suspend_sr picks:
 * the VM's suspend_SR, else the pool's suspend_image_SR, else its host's; VM_NO_SUSPEND_SR without.
 */
export async function createSuspendImage(pool: LabPool, vmRef: string): Promise<string> {
  const vm = pool.db.get('VM', vmRef)
  const poolRecord = pool.db.get('pool', pool.poolRef)
  const host = pool.db.find('host', vm['resident_on'] as string)
  const sr = [vm['suspend_SR'], poolRecord['suspend_image_SR'], host?.['suspend_image_sr']]
    .map(ref => (ref ?? '') as string)
    .find(ref => !pool.isNull(ref) && pool.db.find('SR', ref) !== undefined)
  if (sr === undefined) throw xapiFault('VM_NO_SUSPEND_SR', vmRef)
  checkSrUsable(pool, sr)
  pool.checkSrSpace(sr, BLOCK_SIZE)
  const uuid = randomUUID()
  const size = roundSize(vm['memory_static_max'] as number)
  await pool.storage.create(uuid, size)
  return createVdiRecord(
    pool,
    { SR: sr, name_label: 'Suspend image', type: 'suspend', virtual_size: size, other_config: {} },
    uuid,
  )
}

export async function snapshotVdi(pool: LabPool, vdiRef: string): Promise<string> {
  checkManaged(pool, vdiRef)
  const source = pool.db.get('VDI', vdiRef)
  checkSrUsable(pool, source['SR'] as string)
  const uuid = randomUUID()
  await pool.storage.snapshot(source['location'] as string, uuid)
  const ref = createVdiRecord(
    pool,
    { ...copiedFields(source), is_a_snapshot: true, snapshot_of: vdiRef, snapshot_time: formatXapiDate(new Date()) },
    uuid,
    // the source got a new leaf on top of the frozen one: its vhd-parent changed
    [vdiRef],
  )
  return ref
}

export async function cloneVdi(pool: LabPool, vdiRef: string): Promise<string> {
  checkManaged(pool, vdiRef)
  const source = pool.db.get('VDI', vdiRef)
  checkSrUsable(pool, source['SR'] as string)
  const uuid = randomUUID()
  await pool.storage.clone(source['location'] as string, uuid)
  // XAPI stamps snapshot_time on clones too, although the docs call it invalid there.
  const ref = createVdiRecord(
    pool,
    { ...copiedFields(source), read_only: false, snapshot_time: formatXapiDate(new Date()) },
    uuid,
    [vdiRef],
  )
  return ref
}

/** Full copy into `srRef` (or `into`), block by block, or only the blocks that differ from `base`. */
export async function copyVdi(
  pool: LabPool,
  vdiRef: string,
  srRef: string,
  baseRef: string,
  intoRef: string,
): Promise<string> {
  checkManaged(pool, vdiRef)
  const source = pool.db.get('VDI', vdiRef)
  const sourceDisk = source['location'] as string
  const blocks = pool.isNull(baseRef)
    ? pool.storage.allocatedBlocks(sourceDisk)
    : pool.storage.changedBlocks(sourceDisk, pool.db.get('VDI', baseRef)['location'] as string)
  let targetRef = intoRef
  if (pool.isNull(intoRef)) {
    const sr = pool.isNull(srRef) ? (source['SR'] as string) : srRef
    checkSrUsable(pool, sr)
    // refused before the new VDI exists, as XAPI checks the space a copy needs up front
    pool.checkSrSpace(sr, blocks.length * BLOCK_SIZE)
    const uuid = randomUUID()
    await pool.storage.create(uuid, source['virtual_size'] as number)
    targetRef = createVdiRecord(pool, { ...copiedFields(source), SR: sr, read_only: false, snapshot_time: EPOCH }, uuid)
  } else {
    const into = pool.db.get('VDI', intoRef)
    const location = into['location'] as string
    const added = blocks.reduce((n, index) => n + pool.storage.newBlocks(location, index * BLOCK_SIZE, BLOCK_SIZE), 0)
    pool.checkSrSpace(into['SR'] as string, added * BLOCK_SIZE)
  }
  const targetDisk = pool.db.get('VDI', targetRef)['location'] as string
  const size = source['virtual_size'] as number
  for (const index of blocks) {
    const data = await pool.storage.readBlock(sourceDisk, index)
    const offset = index * BLOCK_SIZE
    await pool.storage.write(targetDisk, offset, data.subarray(0, Math.min(BLOCK_SIZE, size - offset)))
  }
  pool.refreshVdi(targetRef)
  return targetRef
}

export async function destroyVdi(pool: LabPool, vdiRef: string): Promise<void> {
  checkManaged(pool, vdiRef)
  const record = pool.db.get('VDI', vdiRef)
  checkSrUsable(pool, record['SR'] as string)
  const vbds = pool.db.related('VBD', 'VDI', vdiRef)
  if (vbds.some(vbd => pool.db.get('VBD', vbd)['currently_attached'] === true))
    throw xapiFault('VDI_IN_USE', vdiRef, 'destroy')
  for (const vbd of vbds) pool.db.destroy('VBD', vbd)
  for (const [vmRef, vm] of [...pool.db.all('VM')]) {
    if (vm['suspend_VDI'] === vdiRef) pool.db.update('VM', vmRef, { suspend_VDI: NULL_REF })
  }
  pool.db.destroy('VDI', vdiRef)
  await pool.storage.destroy(record['location'] as string)
  pool.refreshSr(record['SR'] as string)
}

export function addVdiMethods(registry: MethodRegistry): void {
  registry.add({
    name: 'VDI.create',
    params: ['struct'],
    async: true,
    handler: async ({ pool }, [struct]) => {
      const fields = readStruct(
        struct!,
        [
          ['SR', 'string'],
          ['virtual_size', 'int'],
          ['type', 'string'],
          ['sharable', 'bool'],
          ['read_only', 'bool'],
          ['other_config', 'map'],
        ],
        [
          ['name_label', 'string'],
          ['name_description', 'string'],
          ['xenstore_data', 'map'],
          ['sm_config', 'map'],
          ['tags', 'set'],
        ],
      )
      const given = stringMember(fields, 'type')
      const type = given.toLowerCase()
      if (!VDI_TYPES.has(type)) throw xapiFault('INTERNAL_ERROR', `Unknown enum value '${given}' for vdi_type`)
      if (type === 'cbt_metadata') throw xapiFault('VDI_INCOMPATIBLE_TYPE', '', 'cbt_metadata')
      checkSrUsable(pool, fields['SR'] as string)
      // Thin provisioning: the virtual size takes no space, but the new VHD's header and BAT
      // do; the lab, which counts whole blocks, asks for one, so a full SR refuses new disks.
      pool.checkSrSpace(fields['SR'] as string, BLOCK_SIZE)
      const size = roundSize(fields['virtual_size'] as number)
      const uuid = randomUUID()
      await pool.storage.create(uuid, size)
      return createVdiRecord(pool, { ...fields, type, virtual_size: size }, uuid)
    },
  })
  registry.add({
    name: 'VDI.snapshot',
    params: ['string', 'map'],
    defaulted: 1,
    async: true,
    handler: ({ pool, task }, [vdi]) =>
      withOperation(pool, 'VDI', vdi as string, 'snapshot', task?.ref, () => snapshotVdi(pool, vdi as string)),
  })
  registry.add({
    name: 'VDI.clone',
    params: ['string', 'map'],
    defaulted: 1,
    async: true,
    handler: ({ pool, task }, [vdi]) =>
      withOperation(pool, 'VDI', vdi as string, 'clone', task?.ref, () => cloneVdi(pool, vdi as string)),
  })
  registry.add({
    name: 'VDI.copy',
    params: ['string', 'string', 'string', 'string'],
    defaulted: 2,
    async: true,
    handler: ({ pool, task }, [vdi, sr, base, into]) =>
      // the source shows the copy in its current_operations while the blocks go over
      withOperation(pool, 'VDI', vdi as string, 'copy', task?.ref, () =>
        copyVdi(
          pool,
          vdi as string,
          sr as string,
          (base as string | undefined) ?? NULL_REF,
          (into as string | undefined) ?? NULL_REF,
        ),
      ),
  })
  registry.add({
    name: 'VDI.destroy',
    params: ['string'],
    async: true,
    handler: async ({ pool }, [vdi]) => {
      await destroyVdi(pool, vdi as string)
      return ''
    },
  })
  registry.add({
    name: 'VDI.resize',
    params: ['string', 'int'],
    async: true,
    handler: async ({ pool }, [vdi, size]) => {
      checkManaged(pool, vdi as string)
      const record = pool.db.get('VDI', vdi as string)
      checkSrUsable(pool, record['SR'] as string)
      const wanted = roundSize(size as number)
      if (wanted < (record['virtual_size'] as number))
        throw xapiFault('SR_BACKEND_FAILURE_79', '', 'VDI Invalid size', 'shrinking is not supported')
      await pool.storage.resize(record['location'] as string, wanted)
      pool.refreshVdi(vdi as string)
      return ''
    },
  })
  for (const field of ['name_label', 'name_description']) {
    registry.add({
      name: `VDI.set_${field}`,
      params: ['string', 'string'],
      async: true,
      handler: ({ pool }, [vdi, value]) => {
        pool.db.update('VDI', vdi as string, { [field]: value as string })
        return ''
      },
    })
    registry.add({
      name: `SR.set_${field}`,
      params: ['string', 'string'],
      async: true,
      handler: ({ pool }, [sr, value]) => {
        pool.db.update('SR', sr as string, { [field]: value as string })
        return ''
      },
    })
  }
  // XAPI's setter for storage backends (SM reports the size it found); the lab's way to shrink
  // or grow an SR, e.g. to make one full.
  registry.add({
    name: 'SR.set_physical_size',
    params: ['string', 'int'],
    handler: ({ pool }, [sr, value]) => {
      pool.db.get('SR', sr as string)
      pool.db.update('SR', sr as string, { physical_size: value as number })
      return ''
    },
  })
  registry.add({
    name: 'SR.scan',
    params: ['string'],
    async: true,
    handler: ({ pool }, [sr]) => {
      // Nothing outside the lab changes the SR, so a scan only refreshes the totals.
      pool.db.get('SR', sr as string)
      pool.refreshSr(sr as string)
      return ''
    },
  })
}
