/**
 * The hidden "base copy" VDIs of a VHD SR. On a real SR a snapshot or clone freezes the disk's
 * VHD into a hidden parent that XAPI lists as a VDI of its own (managed = false, read-only,
 * named "base copy"), and every VHD names its parent's uuid in `sm_config['vhd-parent']`; SM's
 * garbage collector later coalesces a parent left with a single child into it. Clients walk the
 * chain with `VDI.get_by_uuid(sm_config['vhd-parent'])` (Xen Orchestra checks chain health so).
 *
 * The lab's disks are chains of storage layers (see storage/types.ts). A layer from which two or
 * more disks grow apart is a branch point and gets a base-copy record whose uuid is the layer id;
 * a layer with a single child (the layer above it, or the disk whose leaf it is) counts as
 * coalesced into it, as SM's GC leaves it (the store coalesces such layers' data once a destroy
 * leaves them so, except into a writable disk's leaf; the records do not wait for that). A
 * disk's vhd-parent is the nearest branch point of its chain (its own leaf, when that leaf is
 * one: the lab's snapshot disk is the frozen layer itself, which on a real SR is an empty leaf
 * over that base copy).
 */
import type { Database } from '../db/database.js'
import type { LabRecord, StoredValue } from '../db/schema.js'
import type { DiskStore } from '../storage/types.js'

/** What the sync reads: the pool's records and its storage (not the pool: pool.ts calls this). */
interface PoolState {
  readonly db: Database
  readonly storage: DiskStore
}

/** A base copy: not managed, and its location is a storage layer, not a disk. */
export function isBaseCopy(pool: PoolState, record: Readonly<LabRecord>): boolean {
  return record['managed'] === false && pool.storage.info(record['location'] as string) === undefined
}

function withParent(smConfig: Readonly<Record<string, string>>, parent: string | undefined): Record<string, string> {
  const next: Record<string, string> = { ...smConfig, vdi_type: 'vhd' }
  if (parent === undefined) delete next['vhd-parent']
  else next['vhd-parent'] = parent
  return next
}

/**
 * Whether `withParent(smConfig, parent)` would give the same map back. Asked for every disk of
 * the SR after each disk change, so it builds nothing.
 */
function hasParent(smConfig: Readonly<Record<string, string>>, parent: string | undefined): boolean {
  if (smConfig['vdi_type'] !== 'vhd') return false
  return parent === undefined ? !Object.hasOwn(smConfig, 'vhd-parent') : smConfig['vhd-parent'] === parent
}

/** The newest layer of the chain that `shared` accepts. */
function nearestShared(layers: readonly string[], shared: (layer: string) => boolean): string | undefined {
  for (let i = layers.length - 1; i >= 0; i--) if (shared(layers[i]!)) return layers[i]
  return undefined
}

/** Brings the SR's base-copy records and every disk's vhd-parent in line with the storage layers. */
export function syncBaseCopies(pool: PoolState, srRef: string): void {
  const disks: { ref: string; layers: readonly string[]; virtualSize: number }[] = []
  const hidden = new Map<string, string>()
  for (const ref of pool.db.related('VDI', 'SR', srRef)) {
    const record = pool.db.get('VDI', ref)
    const info = pool.storage.info(record['location'] as string)
    if (info !== undefined) disks.push({ ref, layers: info.layers, virtualSize: info.virtualSize })
    else if (record['managed'] === false) hidden.set(record['location'] as string, ref)
  }
  // What grows from each layer: the layer above it in a chain, or the disk whose leaf it is. A
  // layer with one such child is coalesced into it (SM's GC); with two or more it is a branch
  // point, and only those are base copies. A chain of snapshots taken and rotated one after the
  // other thus keeps one base copy, not one per snapshot ever taken.
  const childOf = new Map<string, string | null>()
  for (const disk of disks) {
    disk.layers.forEach((layer, i) => {
      const child = disk.layers[i + 1] ?? `disk ${disk.ref}`
      const seen = childOf.get(layer)
      if (seen === undefined) childOf.set(layer, child)
      else if (seen !== child) childOf.set(layer, null)
    })
  }
  const shared = (layer: string): boolean => childOf.get(layer) === null

  // Every shared layer's record, and its own parent: the nearest shared layer below it.
  const wanted = new Map<string, { parent: string | undefined; virtualSize: number }>()
  for (const disk of disks) {
    let below: string | undefined
    for (const layer of disk.layers) {
      if (!shared(layer)) continue
      if (!wanted.has(layer)) wanted.set(layer, { parent: below, virtualSize: disk.virtualSize })
      below = layer
    }
  }
  for (const [layer, ref] of hidden) {
    if (!wanted.has(layer)) pool.db.destroy('VDI', ref)
  }
  for (const [layer, { parent, virtualSize }] of wanted) {
    const ref = hidden.get(layer)
    const fields: Record<string, StoredValue> = {
      physical_utilisation: pool.storage.layerBytes(layer),
      virtual_size: virtualSize,
    }
    if (ref === undefined) {
      pool.db.create('VDI', {
        ...fields,
        uuid: layer,
        location: layer,
        SR: srRef,
        name_label: 'base copy',
        type: 'user',
        managed: false,
        read_only: true,
        sm_config: withParent({}, parent),
      })
      continue
    }
    const record = pool.db.get('VDI', ref)
    const smConfig = record['sm_config'] as Record<string, string>
    if (
      record['physical_utilisation'] !== fields['physical_utilisation'] ||
      record['virtual_size'] !== fields['virtual_size'] ||
      !hasParent(smConfig, parent)
    )
      pool.db.update('VDI', ref, { ...fields, sm_config: withParent(smConfig, parent) })
  }
  for (const disk of disks) {
    const parent = nearestShared(disk.layers, shared)
    const current = pool.db.get('VDI', disk.ref)['sm_config'] as Record<string, string>
    if (!hasParent(current, parent)) pool.db.update('VDI', disk.ref, { sm_config: withParent(current, parent) })
  }
}
