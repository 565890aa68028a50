/**
 * Before a pass's transfer, what other tools left on the target becomes the job's own. Adopting a
 * seeded template as a pass's base. An XVA export of a snapshot imports as a template
 * (XAPI does it), and neither `xo-cr-seed` 1.0.2 nor a hand-made seed need turn it back into a
 * VM; the plan chose it (`SrPlan.adoptBase`), this makes it what a replica is before the
 * transfer clones its disks: a VM, start blocked, tagged.
 */
import type { XapiClient } from '../xapi/client.js'
import { asRef } from '../xapi/types.js'
import { addTag, blockOperation, setVmIsATemplate, setVmOtherConfig } from '../xapi/vm.js'
import type { PassEventSink, VmIdentity } from './events.js'
import { BLOCKED_START_OPERATIONS, REPLICA_TAG, START_BLOCKED_MESSAGE } from './metadata.js'
import type { SrPlan } from './plan.js'

/**
 * Makes each SR's seeded template base a protected VM and says so in one warning line. Not undone
 * when the pass fails: the adopted copy is a valid replica and base for the next pass.
 */
export async function adoptSeedTemplates(
  target: XapiClient,
  targets: readonly SrPlan[],
  vm: VmIdentity,
  emit: PassEventSink,
  signal: AbortSignal,
): Promise<void> {
  for (const srPlan of targets) {
    await claimInPlaceReplicas(target, srPlan, vm, emit, signal)
    const base = srPlan.baseReplica
    if (srPlan.adoptBase !== true || base === undefined) continue
    const ref = asRef<'VM'>(base.ref)
    // Protected before it stops being a template, so that it is never a startable VM.
    for (const op of BLOCKED_START_OPERATIONS) await blockOperation(target, ref, op, START_BLOCKED_MESSAGE, { signal })
    await addTag(target, ref, REPLICA_TAG, { signal })
    await setVmIsATemplate(target, ref, false, { signal })
    emit({
      kind: 'warning',
      vm,
      code: 'SEED_TEMPLATE_ADOPTED',
      message: `seeded copy ${base.name} (${base.uuid}) on SR ${srPlan.sr.name} was a template: made it a VM (is_a_template false, start blocked, tagged ${REPLICA_TAG}) and used it as the base`,
    })
  }
}

/**
 * Gives each of XO's live in-place replica VMs the plan found on the SR without keys the job's
 * keys (`SrPlan.claimReplicas`), so that it is still the job's copy — for xen-cr's retention and
 * XO's `listReplicatedVms` — once its last keyed target snapshot is gone. One line each.
 */
async function claimInPlaceReplicas(
  target: XapiClient,
  srPlan: SrPlan,
  vm: VmIdentity,
  emit: PassEventSink,
  signal: AbortSignal,
): Promise<void> {
  for (const claimed of srPlan.claimReplicas ?? []) {
    await setVmOtherConfig(target, asRef<'VM'>(claimed.ref), claimed.keys, { signal })
    emit({
      kind: 'warning',
      vm,
      code: 'IN_PLACE_REPLICA_KEYED',
      message: `replica ${claimed.name} (${claimed.uuid}) on SR ${srPlan.sr.name}, updated in place by Xen Orchestra, carried no key of the job (only its snapshots did): gave it the job's keys and its newest snapshot's datetime ${claimed.datetime ?? ''}, so that retention still counts it once its snapshots are gone`,
    })
  }
}
