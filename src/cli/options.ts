import type { Timeouts } from '../config/types.js'
import { UsageError } from '../errors.js'

/** `--concurrency <n>` of the recovery commands: a whole number, 0 = all at once; absent = the job's. */
export function concurrencyOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError('INVALID_OPTION', `--concurrency ${value}: expected a whole number (0 = all at once)`)
  return n
}

/** The global timeout flags as commander parsed them (strings of seconds). */
export interface TimeoutFlags {
  readonly connectTimeout?: string
  readonly callTimeout?: string
  readonly vmTimeout?: string
  readonly runTimeout?: string
}

/** The timeouts the flags set, in ms, to lay over the config's `timeouts`; only those given. */
export function timeoutOverrides(flags: TimeoutFlags): Partial<Timeouts> {
  const seconds = (flag: string, value: string | undefined, zeroMeansNone: boolean): number | undefined => {
    if (value === undefined) return undefined
    const n = Number(value)
    if (value.trim() === '' || !Number.isFinite(n) || n < 0 || (!zeroMeansNone && n === 0))
      throw new UsageError(
        'INVALID_OPTION',
        `${flag} ${value}: expected a number of seconds${zeroMeansNone ? ' (0: no limit)' : ' greater than 0'}`,
      )
    return Math.round(n * 1000)
  }
  const out: { -readonly [K in keyof Timeouts]?: number } = {}
  const connectMs = seconds('--connect-timeout', flags.connectTimeout, false)
  const callMs = seconds('--call-timeout', flags.callTimeout, false)
  const vmMs = seconds('--vm-timeout', flags.vmTimeout, true)
  const runMs = seconds('--run-timeout', flags.runTimeout, true)
  if (connectMs !== undefined) out.connectMs = connectMs
  if (callMs !== undefined) out.callMs = callMs
  if (vmMs !== undefined) out.vmMs = vmMs
  if (runMs !== undefined) out.runMs = runMs
  return out
}
