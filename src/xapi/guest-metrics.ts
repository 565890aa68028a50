/** `VM_guest_metrics`: what a VM's guest tools report once they run. */
import { isXapiError } from '../errors.js'
import type { CallOptions, XapiClient } from './client.js'
import { isNullRef, type Ref } from './types.js'

/**
 * True when the guest tools of the VM whose `guest_metrics` is `ref` have reported: the metrics
 * object exists and says so, by `PV_drivers_detected` (XAPI ≥ 7.0) or, as XO checks it, by a
 * `PV_drivers_version` with a major number (older hosts, Windows tools).
 */
export async function guestToolsReported(
  client: XapiClient,
  ref: Ref<'VM_guest_metrics'>,
  options: CallOptions = {},
): Promise<boolean> {
  if (isNullRef(ref)) return false
  let record: Record<string, unknown>
  try {
    record = await client.call<Record<string, unknown>>('VM_guest_metrics.get_record', [ref], options)
  } catch (error) {
    // the guest stopped and its metrics went between our two reads
    if (isXapiError(error, 'HANDLE_INVALID')) return false
    throw error
  }
  if (record['PV_drivers_detected'] === true) return true
  const version = record['PV_drivers_version']
  return typeof version === 'object' && version !== null && 'major' in version
}
