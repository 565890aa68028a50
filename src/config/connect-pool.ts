import { ConfigError } from '../errors.js'
import type { XapiClient } from '../xapi/client.js'
import type { Env } from './config-paths.js'
import { describeSearch } from './load-config.js'
import { resolvePassword, type PasswordPrompt } from './resolve-password.js'
import type { Config, PoolConfig } from './types.js'
import type { WarnFn } from './validate-config.js'

export interface ConnectPoolOptions {
  env?: Env
  signal?: AbortSignal
  warn?: WarnFn
  /** asks for the password of a pool configured without a source */
  prompt?: PasswordPrompt
  transport?: 'auto' | 'json-rpc' | 'xml-rpc'
  /** default: the config's `timeouts.call` */
  callTimeoutMs?: number
  /** default: the config's `timeouts.connect` */
  connectTimeoutMs?: number
  watchEvents?: boolean
}

/**
 * The configured pool `poolName`.
 * @throws ConfigError `POOL_NOT_CONFIGURED`, naming the config file and the pools it has
 */
export function getPool(config: Config, poolName: string, env: Env = process.env): PoolConfig {
  const pool = Object.hasOwn(config.pools, poolName) ? config.pools[poolName] : undefined
  if (pool !== undefined) return pool
  const known = Object.keys(config.pools)
  const where =
    config.file === undefined
      ? `no config file was found (looked at ${describeSearch(env)})`
      : `${config.file} has ${known.length === 0 ? 'no pools' : `pools ${known.join(', ')}`}`
  throw new ConfigError('POOL_NOT_CONFIGURED', `pool "${poolName}" is not configured: ${where}; add it under "pools"`, {
    ...(config.file === undefined ? {} : { file: config.file }),
    key: `pools.${poolName}`,
  })
}

/**
 * Logs in to a configured pool. The password is read from its source now (file or environment)
 * and handed only to the client; it is never logged.
 * @throws ConfigError (unknown pool, unreadable password), ConnectionError `POOL_UNREACHABLE`, `POOL_AUTH_FAILED`, `POOL_TLS`
 */
export async function connectPool(
  config: Config,
  poolName: string,
  options: ConnectPoolOptions = {},
): Promise<XapiClient> {
  const env = options.env ?? process.env
  const pool = getPool(config, poolName, env)
  const password = await resolvePassword(pool, {
    env,
    ...(options.warn === undefined ? {} : { warn: options.warn }),
    ...(options.prompt === undefined ? {} : { prompt: options.prompt }),
  })
  // loaded on first connect, not with this module: `getPool` serves commands that never reach a
  // pool (`job list`, `config show`), which must not pay for the client and its dependencies
  const { XapiClient: Client } = await import('../xapi/client.js')
  return Client.connect({
    url: pool.url,
    user: pool.user,
    password,
    allowUnauthorized: pool.allowUnauthorized,
    fingerprints: pool.fingerprints,
    ...(options.transport === undefined ? {} : { transport: options.transport }),
    callTimeoutMs: options.callTimeoutMs ?? config.timeouts.callMs,
    connectTimeoutMs: options.connectTimeoutMs ?? config.timeouts.connectMs,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.watchEvents === undefined ? {} : { watchEvents: options.watchEvents }),
  })
}
