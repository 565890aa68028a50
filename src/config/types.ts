/**
 * The configuration file (found by cosmiconfig, module name `xen-cr`): pools with their
 * credentials, and defaults.
 */

/**
 * Where a pool's password comes from. A literal `password` is accepted with a warning; with no
 * source at all it is asked for on the terminal at connect time (`prompt`).
 */
export type PasswordSource =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'env'; readonly variable: string }
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: 'prompt' }

export interface PoolConfig {
  readonly name: string
  /** the pool master's URL, e.g. `https://10.0.0.1` (no credentials) */
  readonly url: string
  readonly user: string
  readonly password: PasswordSource
  /** accept self-signed TLS certificates */
  readonly allowUnauthorized: boolean
  /**
   * pinned host certificates, canonical `sha256:AB:CD:…`; when any, an https pool is trusted
   * through these and nothing else (config key `fingerprint`: one string or a list, one per host)
   */
  readonly fingerprints: readonly string[]
}

export interface Defaults {
  /** job store location; default `$XDG_CONFIG_HOME/xen-cr/jobs.json` */
  readonly jobsFile: string
  readonly retention: number
  readonly concurrency: number
  readonly fullInterval: number
}

/**
 * How long things may take, ms (config section `timeouts`, in seconds; each also a global flag).
 * 0 for `vmMs` and `runMs`: no limit.
 */
export interface Timeouts {
  /** a login to a pool, retries included: a host that accepts TCP and never answers fails in this time */
  readonly connectMs: number
  /** one attempt of one XAPI call (a transient failure is retried, see xapi/retry.ts) */
  readonly callMs: number
  /** one VM's pass, from its snapshot to its rotation; the VM fails and its work is undone */
  readonly vmMs: number
  /** the whole command: everything still running is cancelled and cleaned up */
  readonly runMs: number
}

export interface Config {
  /** the file it was read from, for error messages; undefined when none was found */
  readonly file: string | undefined
  readonly pools: Readonly<Record<string, PoolConfig>>
  readonly defaults: Defaults
  readonly timeouts: Timeouts
}
