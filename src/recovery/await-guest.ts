/**
 * Waiting for a started VM's guest within one deadline: power state Running, then guest tools,
 * then (script mode) a verdict in XenStore. Polls the VM record: one object for minutes at most
 * does not need an event subscription, and a poll works the same on every XAPI version.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import ms from 'ms'
import { AbortedError, OperationError } from '../errors.js'
import type { XapiClient } from '../xapi/client.js'
import { guestToolsReported } from '../xapi/guest-metrics.js'
import type { Ref, VmRecord } from '../xapi/types.js'

/** The key XO's health-check script reads (`planned`) and writes (`running`, then `success` or `failure`). */
export const VERDICT_KEY = 'vm-data/xo-backup-health-check'
/** Where the script puts its reason with a `failure`. */
export const VERDICT_ERROR_KEY = 'vm-data/xo-backup-health-check-error'

export interface WaitContext {
  readonly client: XapiClient
  readonly vm: Ref<'VM'>
  /** epoch ms after which waiting fails */
  readonly deadline: number
  /** the whole budget, for messages */
  readonly timeoutMs: number
  readonly pollMs: number
  readonly signal?: AbortSignal
}

/** `10m`, `30s`: the budget as the user gave it. */
export function formatBudget(timeoutMs: number): string {
  return ms(timeoutMs)
}

/**
 * Calls `probe` until it returns a value, polling every `pollMs`; undefined once the deadline
 * passed (the last probe runs at the deadline, so a state reached just in time counts).
 */
async function poll<T>(context: WaitContext, probe: (vm: VmRecord) => Promise<T | undefined>): Promise<T | undefined> {
  const opts = context.signal === undefined ? {} : { signal: context.signal }
  for (;;) {
    const found = await probe(await context.client.getRecord('VM', context.vm, opts))
    if (found !== undefined) return found
    const left = context.deadline - Date.now()
    if (left <= 0) return undefined
    try {
      await sleep(Math.min(context.pollMs, left), undefined, opts)
    } catch (error) {
      throw new AbortedError('health check aborted', { cause: error })
    }
  }
}

function stopped(vm: VmRecord, waiting: string): OperationError {
  return new OperationError(
    'HEALTH_CHECK_NOT_RUNNING',
    `the health-check VM stopped (power state ${vm.power_state}) while waiting for ${waiting}`,
  )
}

/** Resolves once the VM runs. @throws OperationError `HEALTH_CHECK_NOT_RUNNING` */
export async function awaitRunning(context: WaitContext): Promise<void> {
  const running = await poll(context, async vm => (vm.power_state === 'Running' ? true : undefined))
  if (running === undefined)
    throw new OperationError(
      'HEALTH_CHECK_NOT_RUNNING',
      `the health-check VM did not reach Running within ${formatBudget(context.timeoutMs)}`,
    )
}

/** Resolves once the guest tools reported. @throws OperationError `HEALTH_CHECK_NO_TOOLS`, `HEALTH_CHECK_NOT_RUNNING` */
export async function awaitGuestTools(context: WaitContext): Promise<void> {
  const opts = context.signal === undefined ? {} : { signal: context.signal }
  const reported = await poll(context, async vm => {
    if (await guestToolsReported(context.client, vm.guest_metrics, opts)) return true
    if (vm.power_state !== 'Running') throw stopped(vm, 'the guest tools')
    return undefined
  })
  if (reported === undefined)
    throw new OperationError(
      'HEALTH_CHECK_NO_TOOLS',
      `no guest tools reported within ${formatBudget(context.timeoutMs)}; a VM without guest tools cannot pass a health check`,
    )
}

/**
 * Resolves once the guest's script wrote `success`.
 * @throws OperationError `HEALTH_CHECK_SCRIPT_FAILED` (with the script's message), `HEALTH_CHECK_NO_VERDICT`, `HEALTH_CHECK_NOT_RUNNING`
 */
export async function awaitVerdict(context: WaitContext): Promise<void> {
  let last: string | undefined
  const verdict = await poll(context, async vm => {
    last = vm.xenstore_data[VERDICT_KEY]
    if (last === 'success') return { ok: true as const }
    if (last === 'failure') return { ok: false as const, message: vm.xenstore_data[VERDICT_ERROR_KEY] }
    if (vm.power_state !== 'Running') throw stopped(vm, `the verdict in ${VERDICT_KEY}`)
    return undefined
  })
  if (verdict === undefined)
    throw new OperationError(
      'HEALTH_CHECK_NO_VERDICT',
      `the guest's health-check script did not write success or failure in ${VERDICT_KEY} within ${formatBudget(context.timeoutMs)} (it reads ${last === undefined ? 'nothing' : JSON.stringify(last)})`,
    )
  if (!verdict.ok)
    throw new OperationError(
      'HEALTH_CHECK_SCRIPT_FAILED',
      `the guest's health-check script reported failure${verdict.message === undefined || verdict.message === '' ? ' without a message' : `: ${verdict.message}`}`,
    )
}
