import { resolve } from 'node:path'
import type { Command } from 'commander'
import { ConfigError, OperationError, UsageError } from '../errors.js'
import type { Lab } from '../lab/start.js'
import { contextOf } from './context.js'

interface LabOptions {
  spec?: string
  dir: string
  loginDelay: string
}

function describeLab(lab: Lab): string {
  const lines = [`xen-cr lab: ${lab.pools.length} pool(s) listening; state and disks in ${lab.dir}`]
  if (lab.restored) lines.push('  restored the lab found in that directory (--spec applies only to a new directory)')
  for (const pool of lab.pools) {
    const release = pool.xapiVersion === 'current' ? '' : `  (emulates XenServer ${pool.xapiVersion})`
    lines.push(`  pool ${pool.name}: ${pool.url}  user ${pool.user}  password ${pool.password}${release}`)
    for (const host of pool.hosts) {
      lines.push(`    host ${host.name}: ${host.url}  ${host.httpsUrl}${host.url === pool.url ? ' (master)' : ''}`)
      lines.push(`      certificate ${host.fingerprint}`)
    }
  }
  lines.push(
    `config: ${lab.configPath}`,
    `  e.g. xen-cr --config ${lab.configPath} job create …`,
    `over HTTPS, every host's certificate pinned: ${lab.httpsConfigPath}`,
    'Stop with Ctrl-C (SIGINT) or SIGTERM.',
  )
  return `${lines.join('\n')}\n`
}

/**
 * The lab's own errors in xen-cr's hierarchy (the lab does not import it): a bad spec or state
 * directory is a configuration error (exit 2), a refusal of its disk store a failure (exit 1).
 */
async function fromLabError(error: unknown): Promise<unknown> {
  const { LabDiskError, LabSetupError } = await import('../lab/lab-error.js')
  if (error instanceof LabSetupError)
    return new ConfigError(error.code, error.message, error.file === undefined ? {} : { file: error.file }, {
      cause: error.cause,
    })
  if (error instanceof LabDiskError) return new OperationError(error.code, error.message, { cause: error.cause })
  return error
}

/**
 * `xen-cr lab`: simulated pools on loopback until SIGINT/SIGTERM. With `--json`, exactly one
 * line `{"pools":[…],"config":"<path>","httpsConfig":"<path>"}` once every host listens, so scripts can start it in the
 * background and read where to connect.
 */
export function registerLabCommand(program: Command): void {
  program
    .command('lab')
    .description(
      'run simulated XenServer / XCP-ng pools on loopback until SIGINT/SIGTERM; writes a ready config file into --dir',
    )
    .option(
      '--spec <file>',
      'lab spec (JSON, see examples/lab.json); default: a source pool with a few VMs and a target pool with an empty SR',
    )
    .option('--dir <dir>', 'state and disks; restarting on the same dir restores the pools', '.lab')
    .option('--login-delay <ms>', 'delay before a failed login is answered, as XAPI does', '5000')
    .action(async (options: LabOptions, command: Command) => {
      const context = contextOf(command)
      const loginDelayMs = Number(options.loginDelay)
      if (!Number.isInteger(loginDelayMs) || loginDelayMs < 0)
        throw new UsageError(
          'LAB_LOGIN_DELAY',
          `--login-delay ${options.loginDelay} is not a whole number of milliseconds`,
        )
      const dir = resolve(context.io.cwd, options.dir)
      // the lab loads with its command only: every other command starts without it (issue 11)
      const { startLab } = await import('../lab/start.js')
      const lab = await startLab({
        dir,
        loginDelayMs,
        ...(options.spec === undefined ? {} : { spec: resolve(context.io.cwd, options.spec) }),
      }).catch(async (error: unknown) => {
        throw await fromLabError(error)
      })
      context.defer(() => lab.stop())
      if (context.options.json) {
        context.io.stdout.write(
          `${JSON.stringify({ pools: lab.pools, config: lab.configPath, httpsConfig: lab.httpsConfigPath })}\n`,
        )
      } else {
        context.io.stdout.write(describeLab(lab))
      }
      const { signal } = context
      if (!signal.aborted) await new Promise(done => signal.addEventListener('abort', done, { once: true }))
    })
}
