/**
 * The fields of XAPI records a pass plan reads (subsets of XAPI's records, so the plan is
 * unit-tested from plain objects), and the disks of a VM among them.
 */

type Map_<V> = ReadonlyMap<string, V>
type Strings = Readonly<Record<string, string>>

export interface PlanVm {
  readonly uuid: string
  readonly name_label: string
  readonly power_state: string
  readonly is_a_snapshot: boolean
  readonly is_a_template: boolean
  readonly snapshot_of: string
  readonly other_config: Strings
  readonly blocked_operations: Strings
  readonly VBDs: readonly string[]
}

export interface PlanVbd {
  readonly VM: string
  readonly VDI: string
  readonly type: string
  readonly userdevice: string
}

export interface PlanVdi {
  readonly uuid: string
  readonly name_label: string
  readonly SR: string
  readonly snapshot_of: string
  readonly is_a_snapshot: boolean
  readonly other_config: Strings
  readonly virtual_size: number
}

export interface PlanSr {
  readonly uuid: string
  readonly name_label: string
}

/** Records of one pool, keyed by ref (as `get_all_records` returns them). */
export interface PoolRecords {
  readonly vms: Map_<PlanVm>
  readonly vbds: Map_<PlanVbd>
  readonly vdis: Map_<PlanVdi>
  readonly srs: Map_<PlanSr>
}

/** An object as a plan names it. */
export interface ObjectRef {
  readonly ref: string
  readonly uuid: string
  readonly name: string
}

export const objectRef = (ref: string, r: { readonly uuid: string; readonly name_label: string }): ObjectRef => ({
  ref,
  uuid: r.uuid,
  name: r.name_label,
})

/** A disk of a VM: the VDI behind one of its Disk VBDs. */
export interface PlanDisk {
  readonly ref: string
  readonly vdi: PlanVdi
  readonly userdevice: string
}

/** The Disk VBDs of a VM with a VDI, in userdevice order. */
export function disksOf(vm: PlanVm, pool: PoolRecords): PlanDisk[] {
  const out: PlanDisk[] = []
  for (const vbdRef of vm.VBDs) {
    const vbd = pool.vbds.get(vbdRef)
    if (vbd === undefined || vbd.type !== 'Disk') continue
    const vdi = pool.vdis.get(vbd.VDI)
    if (vdi === undefined) continue
    out.push({ ref: vbd.VDI, vdi, userdevice: vbd.userdevice })
  }
  return out.sort((a, b) => Number(a.userdevice) - Number(b.userdevice))
}
