import type { Command } from 'commander'
import type { Config, PasswordSource } from '../config/types.js'
import { ConfigError, isXenCrError } from '../errors.js'
import { contextOf } from './context.js'
import { exitCodeFor } from './exit-codes.js'
import type { OutputEventOf } from './output/events.js'

/** A password source as shown to users: where it comes from, never the value. */
function describeSource(source: PasswordSource): string {
  switch (source.kind) {
    case 'file':
      return `file ${source.path}`
    case 'env':
      return `environment ${source.variable}`
    case 'literal':
      return 'literal in the config file'
    case 'prompt':
      return 'asked on the terminal'
  }
}

/** The config as `config show` reports it (JSON-safe, without secrets). */
export function configSummary(config: Config): OutputEventOf<'config-show'> {
  return {
    kind: 'config-show',
    file: config.file ?? null,
    pools: Object.values(config.pools).map(pool => ({
      name: pool.name,
      url: pool.url,
      user: pool.user,
      password: describeSource(pool.password),
      allowUnauthorized: pool.allowUnauthorized,
    })),
    defaults: config.defaults,
  }
}

/** `xen-cr config show | check [pool...]`. */
export function registerConfigCommand(program: Command): void {
  const config = program
    .command('config')
    .description('show the configuration, or check that every pool can be logged in to')

  config
    .command('show')
    .description('where the config was found, its pools (password sources, never passwords) and defaults')
    .action(async (_options: unknown, command: Command) => {
      const context = contextOf(command)
      context.output.emit(configSummary(await context.loadConfig()))
    })

  config
    .command('check')
    .argument('[pool...]', 'pools to check (default: all)')
    .description('log in to each pool; exit 4 if one cannot be reached or refuses the credentials')
    .action(async (pools: string[], _options: unknown, command: Command) => {
      const context = contextOf(command)
      const loaded = await context.loadConfig()
      const [{ getPool }, { describeSearch }] = await Promise.all([
        import('../config/connect-pool.js'),
        import('../config/load-config.js'),
      ])
      const names = pools.length > 0 ? pools : Object.keys(loaded.pools)
      // Checking nothing and exiting 0 would tell cron and a new user that all is well.
      if (names.length === 0) {
        const where =
          loaded.file === undefined
            ? `no config file was found (looked at ${describeSearch(context.io.env)})`
            : undefined
        throw new ConfigError(
          'NO_POOLS_CONFIGURED',
          where === undefined
            ? `no pools configured in ${loaded.file}; add a pool (url, user, passwordFile) under "pools"`
            : `no pools configured: ${where}; write one with a pool (url, user, passwordFile) under "pools"`,
          loaded.file === undefined ? {} : { file: loaded.file },
        )
      }
      // an unknown name is a usage problem of the whole command, found before any login
      for (const name of names) getPool(loaded, name, context.io.env)
      for (const name of names) {
        const pool = getPool(loaded, name, context.io.env)
        try {
          const client = await context.connect(name)
          // what to pin (or check against the pin): the certificate the coordinator presents
          const { presentedFingerprint } = await import('../xapi/tls.js')
          const fingerprint = client.url.startsWith('https:')
            ? await presentedFingerprint(client.url, context.signal)
            : undefined
          context.output.emit({
            kind: 'pool-check',
            pool: name,
            url: client.url,
            ok: true,
            ...(fingerprint === undefined
              ? {}
              : { certificate: { fingerprint, pinned: pool.fingerprints.includes(fingerprint) } }),
          })
        } catch (error) {
          if (!isXenCrError(error) || context.signal.aborted) throw error
          context.output.emit({
            kind: 'pool-check',
            pool: name,
            url: pool.url,
            ok: false,
            code: error.code,
            message: error.message,
          })
          context.setExitCode(exitCodeFor(error))
        }
      }
    })
}
