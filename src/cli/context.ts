import { setMaxListeners } from 'node:events'
import { resolve } from 'node:path'
import type { Command } from 'commander'
import type { Config, Timeouts } from '../config/types.js'
import { AbortedError } from '../errors.js'
import type { JobStore } from '../jobs/job-store.js'
import type { XapiClient } from '../xapi/client.js'
import { ExitCode, worstExitCode } from './exit-codes.js'
import { timeoutOverrides, type TimeoutFlags } from './options.js'
import type { Env } from './output/color.js'
import { createOutput, type Output } from './output/output.js'
import type { OutputStream } from './output/renderers.js'
import { promptHidden, type PromptInput } from './prompt.js'

/** What one CLI run talks to; `run()` takes it so tests drive the CLI in-process. */
export interface CliIo {
  readonly stdout: OutputStream
  readonly stderr: OutputStream
  readonly env: Env
  readonly cwd: string
  /** a terminal to ask for passwords on (only the binary passes one, and only if it is a TTY) */
  readonly stdin?: PromptInput
  /** aborted on SIGINT/SIGTERM by the binary */
  readonly signal?: AbortSignal
  readonly now?: () => Date
}

/** The global flags, as commander parsed them (`--no-color` gives `color: false`). */
export interface GlobalOptions {
  readonly config?: string
  readonly jobsFile?: string
  readonly json: boolean
  readonly quiet: boolean
  readonly verbose: boolean
  readonly color: boolean
  /** the --*-timeout flags given, laid over the config's `timeouts` */
  readonly timeouts: Partial<Timeouts>
}

/** Everything a command action needs: output, config, job store, pool connections, the abort signal. */
export interface CliContext {
  readonly io: CliIo
  readonly options: GlobalOptions
  readonly output: Output
  readonly signal: AbortSignal
  /** The config (loaded once; its warnings become `warning` events). */
  loadConfig(): Promise<Config>
  /** The job store: `--jobs-file`, else the config's `defaults.jobsFile`. */
  jobStore(): Promise<JobStore>
  /** Logs in to a configured pool; the client is closed when the command ends. */
  connect(poolName: string): Promise<XapiClient>
  /** Records an outcome without throwing (e.g. one VM failed); the most serious code wins. */
  setExitCode(code: ExitCode): void
  /** Runs `fn` when the command ends, in reverse registration order. */
  defer(fn: () => Promise<void>): void
}

/**
 * Logs in to a job's source and target pools: one client when they are the same pool, since a
 * pass and a seed tell "within one pool" by `source === target`.
 */
export async function connectJobPools(
  context: CliContext,
  job: { readonly source: string; readonly target: string },
): Promise<{ source: XapiClient; target: XapiClient }> {
  if (job.target === job.source) {
    const client = await context.connect(job.source)
    return { source: client, target: client }
  }
  // Both logins at once: a run's fixed cost is one login, not two in a row. A login that
  // succeeds while the other fails is closed with the run (context.connect registers it).
  const [source, target] = await Promise.allSettled([context.connect(job.source), context.connect(job.target)])
  if (source.status === 'rejected') throw source.reason
  if (target.status === 'rejected') throw target.reason
  return { source: source.value, target: target.value }
}

/** Internal: the per-run state behind {@link contextOf}. */
export class CliRuntime {
  exitCode: ExitCode = ExitCode.ok
  private context: CliContext | undefined
  private readonly cleanups: (() => Promise<void>)[] = []
  private readonly started = Date.now()
  private runTimer: NodeJS.Timeout | undefined

  constructor(
    readonly program: Command,
    readonly io: CliIo,
  ) {}

  get created(): boolean {
    return this.context !== undefined
  }

  /** Built on first use, after commander parsed the global flags. */
  get(): CliContext {
    if (this.context !== undefined) return this.context
    const raw = this.program.opts<Partial<GlobalOptions> & TimeoutFlags>()
    const options: GlobalOptions = {
      ...(raw.config === undefined ? {} : { config: raw.config }),
      ...(raw.jobsFile === undefined ? {} : { jobsFile: raw.jobsFile }),
      json: raw.json === true,
      quiet: raw.quiet === true,
      verbose: raw.verbose === true,
      color: raw.color !== false,
      timeouts: timeoutOverrides(raw),
    }
    const output = createOutput({
      stdout: this.io.stdout,
      stderr: this.io.stderr,
      env: this.io.env,
      json: options.json,
      quiet: options.quiet,
      verbose: options.verbose,
      color: options.color,
      ...(this.io.now === undefined ? {} : { now: this.io.now }),
    })
    // The run timeout aborts the run's signal as SIGINT does: everything running is cancelled and
    // cleaned up the same way.
    const runAbort = new AbortController()
    const signal = this.io.signal === undefined ? runAbort.signal : AbortSignal.any([this.io.signal, runAbort.signal])
    // every call, stream and VM of the run listens on it; dozens at once is expected
    setMaxListeners(0, signal)
    const startRunTimer = (config: Config): Config => {
      const runMs = config.timeouts.runMs
      if (runMs > 0 && this.runTimer === undefined) {
        this.runTimer = setTimeout(
          () =>
            runAbort.abort(
              new AbortedError(`the run timeout of ${runMs / 1000} s passed (timeouts.run, --run-timeout)`),
            ),
          Math.max(0, runMs - (Date.now() - this.started)),
        )
        this.runTimer.unref()
      }
      return config
    }
    const warn = (code: string, message: string): void => output.warn(code, message)
    let config: Promise<Config> | undefined
    let warnedUnverified = false
    const logins = new LoginActivity(output)
    // The config, the job store and the pool client are imported when first asked for: a command
    // that does not need them (`--help`, `completion`) does not pay for loading them (issue 11).
    const loadOnce = (): Promise<Config> =>
      (config ??= import('../config/load-config.js')
        .then(({ loadConfig }) =>
          loadConfig({
            ...(options.config === undefined ? {} : { file: options.config }),
            env: this.io.env,
            cwd: this.io.cwd,
            warn,
          }),
        )
        .then(loaded => startRunTimer({ ...loaded, timeouts: { ...loaded.timeouts, ...options.timeouts } })))
    this.context = {
      io: this.io,
      options,
      output,
      signal,
      loadConfig: loadOnce,
      jobStore: async () => {
        const { JobStore } = await import('../jobs/job-store.js')
        if (options.jobsFile !== undefined) {
          return new JobStore(resolve(this.io.cwd, options.jobsFile), { signal })
        }
        return new JobStore((await loadOnce()).defaults.jobsFile, { signal })
      },
      connect: async poolName => {
        const stdin = this.io.stdin
        logins.add(poolName)
        logins.show()
        const prompt =
          stdin?.isTTY === true
            ? (question: string) => logins.prompt(() => promptHidden(question, stdin, this.io.stderr))
            : undefined
        try {
          const config = await loadOnce()
          const { connectPool } = await import('../config/connect-pool.js')
          const client = await connectPool(config, poolName, {
            env: this.io.env,
            signal,
            warn,
            ...(prompt === undefined ? {} : { prompt }),
          })
          this.cleanups.push(() => client.close())
          // once per run, however many pools and logins: the run is not verifying certificates
          if (!warnedUnverified && client.allowUnauthorized && client.url.startsWith('https:')) {
            warnedUnverified = true
            const pools = Object.values(config.pools).filter(p => p.allowUnauthorized && p.url.startsWith('https:'))
            output.warn(
              'TLS_NOT_VERIFIED',
              `TLS certificates are not verified for pool${pools.length > 1 ? 's' : ''} ${pools.map(p => p.name).join(', ')} (allowUnauthorized); pin each host's certificate with "fingerprint" instead (xen-cr config check shows it)`,
            )
          }
          return client
        } finally {
          logins.delete(poolName)
          logins.show()
        }
      },
      setExitCode: code => {
        this.exitCode = worstExitCode(this.exitCode, code)
      },
      defer: fn => {
        this.cleanups.push(fn)
      },
    }
    return this.context
  }

  async cleanup(): Promise<void> {
    clearTimeout(this.runTimer)
    for (const fn of this.cleanups.splice(0).reverse()) {
      await fn().catch((error: unknown) => {
        this.context?.output.emit({
          kind: 'debug',
          message: `cleanup failed: ${error instanceof Error ? error.message : String(error)}`,
        })
      })
    }
    this.context?.output.close()
  }
}

const runtimes = new WeakMap<Command, CliRuntime>()

/** Internal: attaches a run's state to its root command. */
export function attachRuntime(program: Command, runtime: CliRuntime): void {
  runtimes.set(program, runtime)
}

/** The context of the run that `command` (any subcommand, or the program) belongs to. */
export function contextOf(command: Command): CliContext {
  let root = command
  while (root.parent !== null) root = root.parent
  const runtime = runtimes.get(root)
  if (runtime === undefined) throw new Error('contextOf: command is not part of a program built by run()')
  return runtime.get()
}

/**
 * One spinner for the logins in progress (a job's two pools log in at once; two spinners would
 * overwrite each other's line), and one password prompt at a time, with the spinner stopped.
 */
class LoginActivity {
  readonly #pools = new Set<string>()
  readonly #output: CliContext['output']
  #end: (() => void) | undefined
  #prompts: Promise<unknown> = Promise.resolve()
  #prompting = 0

  constructor(output: CliContext['output']) {
    this.#output = output
  }

  add(pool: string): void {
    this.#pools.add(pool)
  }

  delete(pool: string): void {
    this.#pools.delete(pool)
  }

  /** The spinner for the pools now logging in (none while a prompt is up). */
  show(): void {
    this.#end?.()
    this.#end = undefined
    if (this.#pools.size === 0 || this.#prompting > 0) return
    const names = [...this.#pools]
    this.#end = this.#output.activity(`logging in to pool${names.length > 1 ? 's' : ''} ${names.join(', ')}`)
  }

  /** Runs `ask` once no other prompt is up, with the spinner stopped. */
  prompt<T>(ask: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      this.#prompting++
      this.show()
      try {
        return await ask()
      } finally {
        this.#prompting--
        this.show()
      }
    }
    const next = this.#prompts.then(run, run)
    this.#prompts = next.catch(() => undefined)
    return next
  }
}
