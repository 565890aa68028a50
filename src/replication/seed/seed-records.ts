/**
 * What a seed plan reads — the request and the fields of both pools' records it needs (XAPI's
 * records fit) — and the names it gives the objects it finds.
 */
import type { VmSelection } from '../../jobs/types.js'

type Strings = Readonly<Record<string, string>>

/** The fields of a VM record a seed reads (XAPI's `VmRecord` fits). */
export interface SeedVm {
  readonly uuid: string
  readonly name_label: string
  readonly power_state: string
  readonly is_a_snapshot: boolean
  readonly is_a_template: boolean
  readonly is_control_domain: boolean
  readonly snapshot_of: string
  readonly snapshot_time: string
  readonly other_config: Strings
  readonly blocked_operations: Strings
  readonly tags: readonly string[]
  readonly VBDs: readonly string[]
  readonly ha_always_run: boolean
  readonly ha_restart_priority: string
}

export interface SeedVbd {
  readonly VM: string
  readonly VDI: string
  readonly type: string
  readonly userdevice: string
}

export interface SeedVdi {
  readonly uuid: string
  readonly name_label: string
  readonly SR: string
  readonly virtual_size: number
  readonly other_config: Strings
  readonly VBDs: readonly string[]
}

export interface SeedSr {
  readonly uuid: string
  readonly name_label: string
}

/** Records of one pool keyed by ref, as `get_all_records` returns them. */
export interface SeedRecords {
  readonly vms: ReadonlyMap<string, SeedVm>
  readonly vbds: ReadonlyMap<string, SeedVbd>
  readonly vdis: ReadonlyMap<string, SeedVdi>
  readonly srs: ReadonlyMap<string, SeedSr>
}

export interface SeedRequest {
  /**
   * The job. `name`, `srs` and `vms` are known when it is in the job store; a seed for a job
   * defined elsewhere (Xen Orchestra, the drop-in) has only its id and skips those checks.
   */
  readonly job: {
    readonly id: string
    readonly name?: string
    readonly srs?: readonly string[]
    readonly vms?: VmSelection
  }
  readonly scheduleId: string
  readonly snapshotUuid: string
  readonly targetVmUuid: string
}

export interface SeedObject {
  readonly ref: string
  readonly uuid: string
  readonly name: string
}

export interface SeedDiskPair {
  readonly userdevice: string
  readonly virtualSize: number
  readonly source: SeedObject
  readonly target: SeedObject
}

/** A record found by ref. */
export interface Found<T> {
  readonly ref: string
  readonly record: T
}

/** A disk of a VM: the VDI behind one of its Disk VBDs. */
export interface SeedDisk {
  readonly ref: string
  readonly vdi: SeedVdi
  readonly userdevice: string
}

/** The Disk VBDs of a VM with a VDI, in userdevice order. */
export function disksOf(vm: SeedVm, pool: SeedRecords): SeedDisk[] {
  const out: SeedDisk[] = []
  for (const vbdRef of vm.VBDs) {
    const vbd = pool.vbds.get(vbdRef)
    if (vbd === undefined || vbd.type !== 'Disk') continue
    const vdi = pool.vdis.get(vbd.VDI)
    if (vdi !== undefined) out.push({ ref: vbd.VDI, vdi, userdevice: vbd.userdevice })
  }
  return out.sort((a, b) => Number(a.userdevice) - Number(b.userdevice))
}

/** The record of `map` with this uuid, in any case. */
export function findByUuid<T extends { readonly uuid: string }>(
  map: ReadonlyMap<string, T>,
  uuid: string,
): Found<T> | undefined {
  const wanted = uuid.toLowerCase()
  for (const [ref, record] of map) if (record.uuid.toLowerCase() === wanted) return { ref, record }
  return undefined
}

export const seedObject = (ref: string, r: { readonly uuid: string; readonly name_label: string }): SeedObject => ({
  ref,
  uuid: r.uuid,
  name: r.name_label,
})
