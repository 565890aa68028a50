/**
 * The temporary VM of a health check: made from a replica (a clone, or a copy onto another SR),
 * turned into an ordinary VM without network, and always removed again. Its removal is
 * registered on the task that makes it, so a VM whose creation completes after an abort (the
 * task was past the point of cancelling) is removed too.
 */
import { AbortedError, isXapiError } from '../errors.js'
import type { CleanupStack } from '../delta/cleanup.js'
import { destroyVmAndDisks } from '../replication/destroy.js'
import type { CallOptions, XapiClient } from '../xapi/client.js'
import { cancelTask, destroyTask, taskOutcome } from '../xapi/task.js'
import type { Ref } from '../xapi/types.js'
import { addTag, hardShutdownVm } from '../xapi/vm.js'
import { applyNetworks, unmarkReplica } from './make-runnable.js'

/** XO's tag on its health-check VMs: backup jobs of the target pool leave them alone. */
export const NO_BACKUP_TAG = 'xo:no-bak=Health Check'

/** The temporary VM's name, as XO names it. */
export function testVmName(replicaName: string): string {
  return `Health Check - ${replicaName}`
}

/** Powers the VM off if it runs, then destroys it and its disks; a VM already gone is fine. */
export async function discardVm(client: XapiClient, vm: Ref<'VM'>): Promise<void> {
  let record
  try {
    record = await client.getRecord('VM', vm)
  } catch (error) {
    if (isXapiError(error, 'HANDLE_INVALID')) return
    throw error
  }
  if (record.power_state !== 'Halted') {
    try {
      await hardShutdownVm(client, vm)
    } catch (error) {
      // it halted by itself in between
      if (!isXapiError(error, 'VM_BAD_POWER_STATE')) throw error
    }
  }
  await destroyVmAndDisks(client, vm)
}

/**
 * Runs `Async.<method>` and resolves with its result. An abort cancels the task but keeps
 * waiting for it to settle, so that the caller learns about an object it made anyway.
 */
async function settle(client: XapiClient, method: string, args: readonly unknown[], signal?: AbortSignal) {
  // Not given the signal: an abort while this call is on the wire would lose the task's ref and
  // so the VM it goes on to make; the call returns at once, and an abort then cancels the task.
  const task = await client.call<Ref<'task'>>(`Async.${method}`, args)
  const onAbort = (): void => void cancelTask(client, task).catch(() => undefined)
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    const record = await client.watchTask(task)
    await destroyTask(client, task).catch(() => undefined)
    return taskOutcome(record, method)
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

/**
 * Makes the test VM from `replica` (`VM.clone`, or `VM.copy` onto `sr`), registering its removal
 * on `cleanup` before waiting for it. Falls back from clone to copy on an SR that cannot clone.
 */
export async function makeTestVm(
  client: XapiClient,
  replica: Ref<'VM'>,
  name: string,
  how: { readonly via: 'clone' | 'copy'; readonly sr: Ref<'SR'> },
  cleanup: CleanupStack,
  options: { readonly signal?: AbortSignal; readonly onCopyInstead?: () => void } = {},
): Promise<{ vm: Ref<'VM'>; via: 'clone' | 'copy' }> {
  // a call, not a property read: the compiler would keep the first check's narrowing for the second
  const aborted = (): boolean => options.signal?.aborted === true
  const attempt = async (via: 'clone' | 'copy'): Promise<Ref<'VM'>> => {
    if (aborted()) throw new AbortedError('health check aborted')
    const made = settle(
      client,
      via === 'clone' ? 'VM.clone' : 'VM.copy',
      via === 'clone' ? [replica, name] : [replica, name, how.sr],
      options.signal,
    ) as Promise<Ref<'VM'>>
    made.catch(() => undefined)
    cleanup.defer(`health-check VM ${name}`, async () => {
      const vm = await made.catch(() => undefined)
      if (vm !== undefined) await discardVm(client, vm)
    })
    const vm = await made
    if (aborted()) throw new AbortedError('health check aborted')
    return vm
  }
  if (how.via === 'copy') return { vm: await attempt('copy'), via: 'copy' }
  try {
    return { vm: await attempt('clone'), via: 'clone' }
  } catch (error) {
    // An SR whose driver cannot clone (some LVM and LUN-per-VDI SRs) still copies.
    if (!isXapiError(error, 'SR_OPERATION_NOT_SUPPORTED')) throw error
    options.onCopyInstead?.()
    return { vm: await attempt('copy'), via: 'copy' }
  }
}

/**
 * Turns the fresh clone into an ordinary VM that can start and reaches nothing: start
 * unblocked, no replica tag or key on it or its disks (a pass or retention must never take it
 * for a replica), no VIF (no address clash with the running original), tagged for no backup.
 */
export async function prepareTestVm(client: XapiClient, vm: Ref<'VM'>, options: CallOptions = {}): Promise<void> {
  await unmarkReplica(client, vm, options)
  await applyNetworks(client, vm, { kind: 'none' }, new Map(), options)
  await addTag(client, vm, NO_BACKUP_TAG, options)
}
