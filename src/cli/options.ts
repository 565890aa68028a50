import { UsageError } from '../errors.js'

/** `--concurrency <n>` of the recovery commands: a whole number, 0 = all at once; absent = the job's. */
export function concurrencyOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError('INVALID_OPTION', `--concurrency ${value}: expected a whole number (0 = all at once)`)
  return n
}
