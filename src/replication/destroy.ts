/**
 * Removing a VM together with its disks: a rotated replica, a source snapshot, or the debris of
 * a failed pass. XAPI's `VM.destroy` leaves VDIs behind (XO #5721: orphans pile up), so the disks
 * go too, unless another VM still uses them.
 *
 * The disks go first and the VM last (`VDI.destroy` also removes the VBD of a halted VM): a
 * process killed half-way leaves the VM, still carrying the keys or name that made it ours, with
 * fewer disks — never a disk that nothing points to and whose own keys may not say whose it is
 * (era A disks, a snapshot's disks before its keys are written).
 */
import { isXapiError } from '../errors.js'
import type { CallOptions, XapiClient } from '../xapi/client.js'
import { fieldIs, getAllRecordsWhere, getRecordsByRef } from '../xapi/records.js'
import { asRef, isNullRef, type Ref } from '../xapi/types.js'
import { destroyVdi } from '../xapi/vdi.js'
import { destroyVm, replaceVmOtherConfig } from '../xapi/vm.js'

/** Runs `call`; an object already gone (`HANDLE_INVALID`) resolves to undefined. */
async function unlessGone<T>(call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call()
  } catch (error) {
    if (isXapiError(error, 'HANDLE_INVALID')) return undefined
    throw error
  }
}

/**
 * Destroys each disk of `vm` no other VM uses, then `vm`; a VM or disk already gone is not an
 * error. `markFirst`: `other_config` entries written on the VM (whole map, one call) before any
 * disk goes, so that a VM left with fewer disks by a kill reads as what it is — e.g. a rotated
 * replica given the placeholder datetime reads as a leftover, not as a complete replica.
 */
export async function destroyVmAndDisks(
  client: XapiClient,
  vm: Ref<'VM'>,
  options: CallOptions & {
    readonly markFirst?: Readonly<Record<string, string>>
    /** every VBD of `vm`, as read a moment ago: not read again (its disks still are, for their other VBDs) */
    readonly vbds?: ReadonlyMap<string, { readonly VDI: string; readonly type: string }>
  } = {},
): Promise<void> {
  if (options.markFirst !== undefined) {
    const record = await unlessGone(() => client.getRecord('VM', vm, options))
    if (record === undefined) return
    await unlessGone(() => replaceVmOtherConfig(client, vm, { ...record.other_config, ...options.markFirst }, options))
  }
  // Two queries whatever the number of disks: the VM's VBDs (none when it is gone), their VDIs.
  const vbds = options.vbds ?? (await getAllRecordsWhere(client, 'VBD', fieldIs('VM', vm), options))
  const disks = [...vbds].filter(([, vbd]) => vbd.type === 'Disk' && !isNullRef(vbd.VDI))
  const vdis = await getRecordsByRef(
    client,
    'VDI',
    disks.map(([, vbd]) => asRef<'VDI'>(vbd.VDI)),
    options,
  )
  for (const [vbdRef, vbd] of disks) {
    const vdi = vdis.get(asRef<'VDI'>(vbd.VDI))
    // another VBD: another VM (a clone being made, someone's VM) still uses the disk
    if (vdi === undefined || vdi.VBDs.some(other => other !== vbdRef)) continue
    await unlessGone(() => destroyVdi(client, asRef<'VDI'>(vbd.VDI), options))
  }
  await unlessGone(() => destroyVm(client, vm, options))
}
