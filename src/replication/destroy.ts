/**
 * Removing a VM together with its disks: a rotated replica, a source snapshot, or the debris of
 * a failed pass. XAPI's `VM.destroy` leaves VDIs behind (XO #5721: orphans pile up), so the disks
 * go too, unless another VM still uses them.
 */
import { isXapiError } from '../errors.js'
import type { XapiClient } from '../xapi/client.js'
import { isNullRef, type Ref } from '../xapi/types.js'
import { destroyVdi } from '../xapi/vdi.js'
import { destroyVm } from '../xapi/vm.js'

/** Destroys `vm`, then each of its disks no other VM uses; a VM already gone is not an error. */
export async function destroyVmAndDisks(client: XapiClient, vm: Ref<'VM'>): Promise<void> {
  let record
  try {
    record = await client.getRecord('VM', vm)
  } catch (error) {
    if (isXapiError(error, 'HANDLE_INVALID')) return
    throw error
  }
  const vdis: Ref<'VDI'>[] = []
  for (const vbdRef of record.VBDs) {
    const vbd = await client.getRecord('VBD', vbdRef)
    if (vbd.type === 'Disk' && !isNullRef(vbd.VDI)) vdis.push(vbd.VDI)
  }
  await destroyVm(client, vm)
  for (const vdi of vdis) {
    try {
      const rec = await client.getRecord('VDI', vdi)
      if (rec.VBDs.length === 0) await destroyVdi(client, vdi)
    } catch (error) {
      if (!isXapiError(error, 'HANDLE_INVALID')) throw error
    }
  }
}
