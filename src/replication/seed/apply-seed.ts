/** Writing a seed plan's changes, in the plan's order (target disks, target VM, source disks, snapshot). */
import { isXapiError } from '../../errors.js'
import type { XapiClient } from '../../xapi/client.js'
import { asRef } from '../../xapi/types.js'
import { setVdiOtherConfig } from '../../xapi/vdi.js'
import { addTag, blockOperation, setVmIsATemplate, setVmNameLabel, setVmOtherConfig } from '../../xapi/vm.js'
import type { SeedPlan } from './plan-seed.js'
import type { SeedChange } from './seed-changes.js'

export interface ApplySeedOptions {
  readonly source: XapiClient
  readonly target: XapiClient
  readonly signal?: AbortSignal
}

/**
 * Writes every change of `plan`. An interruption leaves a partial seed that the next seed run
 * completes (the plan is recomputed from what is there); the snapshot's `exported` marker goes
 * last, so a partial seed is never taken for a base.
 */
export async function applySeed(plan: SeedPlan, options: ApplySeedOptions): Promise<void> {
  for (const change of plan.changes) {
    await applyChange(change, change.side === 'source' ? options.source : options.target, options.signal)
  }
}

async function applyChange(change: SeedChange, client: XapiClient, signal: AbortSignal | undefined): Promise<void> {
  const opts = signal === undefined ? {} : { signal }
  if (change.cls === 'VDI') {
    await setVdiOtherConfig(client, asRef<'VDI'>(change.object.ref), change.otherConfig, opts)
    return
  }
  const vm = asRef<'VM'>(change.object.ref)
  if (change.nameLabel !== undefined) await setVmNameLabel(client, vm, change.nameLabel, opts)
  for (const [op, reason] of Object.entries(change.blockedOperations ?? {}))
    await blockOperation(client, vm, op, reason, opts)
  for (const tag of change.addTags ?? []) await addTag(client, vm, tag, opts)
  if (change.clearHa === true) {
    await client.call('VM.set_ha_restart_priority', [vm, ''], opts)
    await client.call('VM.set_ha_always_run', [vm, false], opts)
  }
  // After the start block: an imported template never becomes a startable VM, even for a moment.
  if (change.clearIsATemplate === true) {
    try {
      await setVmIsATemplate(client, vm, false, opts)
    } catch (error) {
      // Some licences refuse it; the copy is a valid base either way (a pass adopts a template).
      if (!isXapiError(error, 'LICENCE_RESTRICTION')) throw error
    }
  }
  await setVmOtherConfig(client, vm, change.otherConfig, opts)
}
