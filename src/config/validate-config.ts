import { dirname, isAbsolute, resolve } from 'node:path'
import { ConfigError } from '../errors.js'
import { parseFingerprint } from '../xapi/tls.js'
import { defaultJobsFile, type Env } from './config-paths.js'
import type { Config, Defaults, PasswordSource, PoolConfig, Timeouts } from './types.js'

/** Receives recoverable oddities (unknown keys, a literal password) as `warning` events. */
export type WarnFn = (code: string, message: string) => void

export const DEFAULT_RETENTION = 1
export const DEFAULT_CONCURRENCY = 2
export const DEFAULT_FULL_INTERVAL = 0
/** seconds; see {@link Timeouts} */
export const DEFAULT_TIMEOUTS = { connect: 30, call: 300, vm: 0, run: 0 } as const

/** Pool names appear in flags, job definitions and crontab lines, so they stay shell-safe. */
const POOL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export interface ValidateConfigOptions {
  /** where the config was read from, for messages; `<file>#xen-cr` for package.json */
  readonly label: string | undefined
  /** the file itself (relative paths resolve against its folder), or undefined */
  readonly file: string | undefined
  /** folder for relative paths when there is no file */
  readonly cwd: string
  readonly env: Env
  readonly warn?: WarnFn
}

type Json = Record<string, unknown>

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function describe(value: unknown): string {
  const text = JSON.stringify(value)
  return text === undefined ? String(value) : text.length > 40 ? `${text.slice(0, 37)}...` : text
}

/**
 * Turns a parsed config document into a {@link Config}. Every refusal is a ConfigError whose
 * message starts with the file and the key (`/etc/xen-cr/config.json: pools.lab.url: …`), so the
 * user knows exactly what to edit; the same two are on the error as `file` and `key`.
 */
export function validateConfig(raw: unknown, options: ValidateConfigOptions): Config {
  const where = options.label ?? '(no config file)'
  const fail = (key: string, problem: string): never => {
    throw new ConfigError('CONFIG_INVALID', `${where}: ${key === '' ? '(top level)' : key}: ${problem}`, {
      ...(options.file === undefined ? {} : { file: options.file }),
      key,
    })
  }
  const warnUnknown = (object: Json, known: readonly string[], prefix: string): void => {
    for (const key of Object.keys(object)) {
      if (!known.includes(key)) {
        options.warn?.(
          'CONFIG_UNKNOWN_KEY',
          `${where}: ${prefix}${key}: unknown key, ignored (known: ${known.join(', ')})`,
        )
      }
    }
  }
  const baseDir = options.file === undefined ? options.cwd : dirname(options.file)
  const resolvePath = (path: string): string => (isAbsolute(path) ? path : resolve(baseDir, path))

  if (!isObject(raw)) return fail('', `must be an object with "pools" and "defaults", got ${describe(raw)}`)
  warnUnknown(raw, ['pools', 'defaults', 'timeouts'], '')

  const rawPools = raw['pools'] ?? {}
  if (!isObject(rawPools)) return fail('pools', `must be an object of pool name → settings, got ${describe(rawPools)}`)
  const pools: Record<string, PoolConfig> = {}
  for (const [name, rawPool] of Object.entries(rawPools)) {
    const key = `pools.${name}`
    if (!POOL_NAME.test(name))
      fail(key, 'pool names use letters, digits, ".", "_" and "-" and start with a letter or digit')
    if (!isObject(rawPool))
      return fail(key, `must be an object with url, user and a password source, got ${describe(rawPool)}`)
    warnUnknown(
      rawPool,
      ['url', 'user', 'passwordFile', 'passwordEnv', 'password', 'allowUnauthorized', 'fingerprint'],
      `${key}.`,
    )
    pools[name] = validatePool(name, rawPool, key, fail, resolvePath, options.warn, where)
  }

  const rawDefaults = raw['defaults'] ?? {}
  if (!isObject(rawDefaults)) return fail('defaults', `must be an object, got ${describe(rawDefaults)}`)
  warnUnknown(rawDefaults, ['jobsFile', 'retention', 'concurrency', 'fullInterval'], 'defaults.')
  const integer = (key: string, min: number, fallback: number): number => {
    const value = rawDefaults[key]
    if (value === undefined) return fallback
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      return fail(`defaults.${key}`, `must be an integer ≥ ${min}, got ${describe(value)}`)
    }
    return value
  }
  const jobsFile = rawDefaults['jobsFile']
  if (jobsFile !== undefined && (typeof jobsFile !== 'string' || jobsFile === '')) {
    fail('defaults.jobsFile', `must be a file path, got ${describe(jobsFile)}`)
  }
  const defaults: Defaults = {
    jobsFile: typeof jobsFile === 'string' ? resolvePath(jobsFile) : defaultJobsFile(options.env),
    retention: integer('retention', 1, DEFAULT_RETENTION),
    concurrency: integer('concurrency', 1, DEFAULT_CONCURRENCY),
    fullInterval: integer('fullInterval', 0, DEFAULT_FULL_INTERVAL),
  }
  const rawTimeouts = raw['timeouts'] ?? {}
  if (!isObject(rawTimeouts))
    return fail('timeouts', `must be an object of seconds (connect, call, vm, run), got ${describe(rawTimeouts)}`)
  warnUnknown(rawTimeouts, Object.keys(DEFAULT_TIMEOUTS), 'timeouts.')
  const seconds = (key: keyof typeof DEFAULT_TIMEOUTS, zeroMeansNone: boolean): number => {
    const value = rawTimeouts[key] ?? DEFAULT_TIMEOUTS[key]
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!zeroMeansNone && value === 0))
      return fail(
        `timeouts.${key}`,
        `must be a number of seconds${zeroMeansNone ? ' (0: no limit)' : ' > 0'}, got ${describe(value)}`,
      )
    return Math.round(value * 1000)
  }
  const timeouts: Timeouts = {
    connectMs: seconds('connect', false),
    callMs: seconds('call', false),
    vmMs: seconds('vm', true),
    runMs: seconds('run', true),
  }
  return { file: options.file, pools, defaults, timeouts }
}

function validatePool(
  name: string,
  raw: Json,
  key: string,
  fail: (key: string, problem: string) => never,
  resolvePath: (path: string) => string,
  warn: WarnFn | undefined,
  where: string,
): PoolConfig {
  const rawUrl = raw['url']
  if (typeof rawUrl !== 'string' || rawUrl.trim() === '')
    fail(`${key}.url`, `must be the pool master's URL, e.g. https://10.0.0.1, got ${describe(rawUrl)}`)
  const urlText = String(rawUrl).trim()
  let url: URL
  try {
    // a bare host means HTTPS, as xen-api itself assumes
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(urlText) ? urlText : `https://${urlText}`)
  } catch {
    return fail(`${key}.url`, `is not a URL: ${describe(urlText)}; use e.g. https://10.0.0.1`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    fail(`${key}.url`, `must use http or https, got ${url.protocol}`)
  if (url.username !== '' || url.password !== '') {
    // never echo the URL here: it holds a credential
    fail(`${key}.url`, 'must not contain credentials; put them in "user" and "passwordFile"')
  }
  const user = raw['user'] ?? 'root'
  if (typeof user !== 'string' || user === '') fail(`${key}.user`, `must be a user name, got ${describe(user)}`)

  const sources = (['passwordFile', 'passwordEnv', 'password'] as const).filter(field => raw[field] !== undefined)
  if (sources.length > 1)
    fail(`${key}.${sources[1] ?? 'password'}`, `conflicts with ${sources[0] ?? ''}: give only one password source`)
  let password: PasswordSource
  const field = sources[0]
  const value = field === undefined ? undefined : raw[field]
  if (field === undefined) {
    // asked for on the terminal when needed; unattended runs fail then, naming this key
    password = { kind: 'prompt' }
  } else if (field === 'passwordFile') {
    if (typeof value !== 'string' || value === '')
      return fail(`${key}.passwordFile`, `must be a file path, got ${describe(value)}`)
    password = { kind: 'file', path: resolvePath(value) }
  } else if (field === 'passwordEnv') {
    if (typeof value !== 'string' || !ENV_NAME.test(value))
      return fail(`${key}.passwordEnv`, `must be an environment variable name, got ${describe(value)}`)
    password = { kind: 'env', variable: value }
  } else {
    // the value itself is never shown, only its type
    if (typeof value !== 'string' || value === '')
      return fail(`${key}.password`, `must be a non-empty string, got a ${typeof value}`)
    warn?.(
      'CONFIG_LITERAL_PASSWORD',
      `${where}: ${key}.password: a literal password in the config file; prefer passwordFile (mode 0600) or passwordEnv`,
    )
    password = { kind: 'literal', value }
  }
  const allowUnauthorized = raw['allowUnauthorized'] ?? false
  if (typeof allowUnauthorized !== 'boolean')
    fail(`${key}.allowUnauthorized`, `must be true or false, got ${describe(allowUnauthorized)}`)

  const rawFingerprint = raw['fingerprint'] ?? []
  const fingerprintTexts = typeof rawFingerprint === 'string' ? [rawFingerprint] : rawFingerprint
  if (!Array.isArray(fingerprintTexts))
    fail(`${key}.fingerprint`, `must be "sha256:AB:CD:…" or a list of them, got ${describe(rawFingerprint)}`)
  const fingerprints = (fingerprintTexts as unknown[]).map((text, i) => {
    const parsed = typeof text === 'string' ? parseFingerprint(text) : undefined
    if (parsed === undefined)
      fail(
        `${key}.fingerprint${typeof rawFingerprint === 'string' ? '' : `[${i}]`}`,
        `must be a SHA-256 fingerprint as \`openssl x509 -noout -fingerprint -sha256\` prints it (e.g. "sha256:AB:CD:…", 32 bytes), got ${describe(text)}`,
      )
    return parsed
  })
  if (fingerprints.length > 0 && url.protocol !== 'https:')
    fail(`${key}.fingerprint`, `pins a certificate but the url is ${url.protocol}; use https://`)
  if (fingerprints.length > 0 && allowUnauthorized === true)
    fail(
      `${key}.fingerprint`,
      'conflicts with allowUnauthorized: true; a pinned certificate is verified, remove allowUnauthorized',
    )

  return {
    name,
    url: url.href.replace(/\/$/, ''),
    user: String(user),
    password,
    allowUnauthorized: allowUnauthorized === true,
    fingerprints,
  }
}
