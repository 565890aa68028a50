import type { ConfigCommandEvent } from './events.js'
import type { FormattersOf } from './formatter.js'
import { nameOnce } from './name-once.js'

/** `config show` and `config check`. */
export const configFormatters: FormattersOf<ConfigCommandEvent> = {
  'config-show': {
    class: 'result',
    format: (event, style) => [
      `config file: ${event.file ?? 'none found (built-in defaults)'}`,
      ...(event.pools.length === 0
        ? ['pools: none']
        : event.pools.map(
            pool =>
              `pool ${style.bold(pool.name)}: ${pool.url} user ${pool.user}, password from ${pool.password}${pool.allowUnauthorized ? ', untrusted TLS accepted' : ''}`,
          )),
      `job store: ${event.defaults.jobsFile}`,
      `defaults: retention ${event.defaults.retention}, concurrency ${event.defaults.concurrency}, full interval ${event.defaults.fullInterval}`,
    ],
  },
  'pool-check': {
    // a failed login is a diagnostic: stderr, so a script reading stdout sees only the pools that work
    class: event => (event.ok ? 'result' : 'error'),
    format: (event, style) =>
      event.ok
        ? [
            `${style.green('✓')} pool ${event.pool}: logged in to ${event.url}${event.certificate === undefined ? '' : `, certificate ${event.certificate.fingerprint}${event.certificate.pinned ? ' (pinned)' : ''}`}`,
          ]
        : [
            `${style.red('✗')} ${nameOnce('pool', event.pool, event.message ?? 'failed', `pool ${event.pool}`)} [${event.code ?? 'ERROR'}]`,
          ],
  },
}
