import { homedir } from 'node:os'
import { join } from 'node:path'

export type Env = Readonly<Record<string, string | undefined>>

/** `$XDG_CONFIG_HOME/xen-cr`, or `$HOME/.config/xen-cr` when XDG_CONFIG_HOME is unset or not absolute (XDG spec). */
export function xdgConfigDir(env: Env): string {
  const xdg = env['XDG_CONFIG_HOME']
  if (xdg !== undefined && xdg.startsWith('/')) return join(xdg, 'xen-cr')
  const home = env['HOME'] !== undefined && env['HOME'] !== '' ? env['HOME'] : homedir()
  return join(home, '.config', 'xen-cr')
}

/** The job store used when neither the config nor a flag names one. */
export function defaultJobsFile(env: Env): string {
  return join(xdgConfigDir(env), 'jobs.json')
}
