/**
 * A job's health-check setting: after each pass, each replicated VM's new replica is cloned,
 * booted and destroyed again (`xen-cr health-check`). Optional in the job store, so job files
 * written before it existed read as they did.
 */
import ms from 'ms'
import { UsageError } from '../errors.js'
import { isUuid } from './uuid.js'
import type { HealthCheckSetting } from './types.js'

/** Xen Orchestra's default budget for boot, guest tools and script together. */
export const DEFAULT_HEALTH_CHECK_TIMEOUT = '10m'
export const DEFAULT_HEALTH_CHECK_TIMEOUT_MS = 10 * 60_000

/** A VM (and so its replicas and their clones) with this tag is checked in script mode, as in XO. */
export const XENSTORE_MODE_TAG = 'xo-backup-health-check-xenstore'

/**
 * A budget such as `10m`, `90s`, `1h` (the `ms` package's syntax, as intervals), at least one
 * second; a bare number is milliseconds.
 * @throws UsageError `INVALID_OPTION`
 */
export function parseHealthCheckTimeout(text: string, flag = '--timeout'): { timeout: string; timeoutMs: number } {
  const trimmed = text.trim()
  const value = trimmed === '' ? undefined : (ms(trimmed as ms.StringValue) as number | undefined)
  if (value === undefined || !Number.isFinite(value) || value < 1_000)
    throw new UsageError('INVALID_OPTION', `${flag} "${text}" is not a duration of at least 1s; use e.g. 90s, 10m`)
  return { timeout: trimmed, timeoutMs: value }
}

/** What `job create` (and `job edit`) was given for the health check. */
export interface HealthCheckInput {
  /** true: on (with defaults); false: off (`job edit --no-health-check`) */
  readonly enabled?: boolean | undefined
  readonly sr?: string | undefined
  readonly timeout?: string | undefined
  readonly xenstore?: boolean | undefined
}

/**
 * The setting, or undefined when none of the health-check flags was given: any of them turns it
 * on (`--health-check` alone takes the defaults).
 * @throws UsageError `INVALID_OPTION`
 */
export function buildHealthCheckSetting(input: HealthCheckInput): HealthCheckSetting | undefined {
  if (input.enabled === false) {
    if (input.sr !== undefined || input.timeout !== undefined || input.xenstore === true)
      throw new UsageError('CONFLICTING_OPTIONS', '--no-health-check cannot be given with other --health-check options')
    return undefined
  }
  if (input.enabled !== true && input.sr === undefined && input.timeout === undefined && input.xenstore !== true)
    return undefined
  if (input.sr !== undefined && !isUuid(input.sr.trim()))
    throw new UsageError('INVALID_OPTION', `--health-check-sr must be a uuid, got "${input.sr}"`)
  return {
    ...(input.sr === undefined ? {} : { sr: input.sr.trim().toLowerCase() }),
    ...(input.timeout === undefined
      ? { timeout: DEFAULT_HEALTH_CHECK_TIMEOUT, timeoutMs: DEFAULT_HEALTH_CHECK_TIMEOUT_MS }
      : parseHealthCheckTimeout(input.timeout, '--health-check-timeout')),
    xenstore: input.xenstore === true,
  }
}

/**
 * Reads `healthCheck` of a stored job (absent: undefined). `timeoutMs` is recomputed from the
 * text, so a hand edit of `timeout` alone takes effect.
 */
export function parseHealthCheckSetting(
  raw: unknown,
  key: string,
  fail: (key: string, problem: string) => never,
): HealthCheckSetting | undefined {
  if (raw === undefined) return undefined
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return fail(key, 'must be an object {"sr"?: uuid, "timeout": "10m", "xenstore": false}')
  const setting = raw as Record<string, unknown>
  const sr = setting['sr']
  if (sr !== undefined && (typeof sr !== 'string' || !isUuid(sr))) fail(`${key}.sr`, 'must be a uuid')
  const timeout = setting['timeout'] ?? DEFAULT_HEALTH_CHECK_TIMEOUT
  if (typeof timeout !== 'string') return fail(`${key}.timeout`, 'must be a duration such as "10m"')
  let parsed: { timeout: string; timeoutMs: number }
  try {
    parsed = parseHealthCheckTimeout(timeout, 'timeout')
  } catch (error) {
    if (error instanceof UsageError) return fail(`${key}.timeout`, error.message)
    throw error
  }
  const xenstore = setting['xenstore'] ?? false
  if (typeof xenstore !== 'boolean') fail(`${key}.xenstore`, 'must be true or false')
  return { ...(typeof sr === 'string' ? { sr: sr.toLowerCase() } : {}), ...parsed, xenstore: xenstore === true }
}

/** A stored setting as input again, so that `job edit` changes only the flags it was given. */
export function healthCheckInputOf(setting: HealthCheckSetting): HealthCheckInput {
  return { enabled: true, sr: setting.sr, timeout: setting.timeout, xenstore: setting.xenstore }
}

/** The current setting (if any) with the flags of an edit over it; `--no-health-check` drops it whole. */
export function mergeHealthCheckInput(current: HealthCheckInput | undefined, edit: HealthCheckInput): HealthCheckInput {
  if (edit.enabled === false) return edit
  return {
    enabled: true,
    sr: edit.sr ?? current?.sr,
    timeout: edit.timeout ?? current?.timeout,
    xenstore: edit.xenstore ?? current?.xenstore,
  }
}
