import { readFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import { inspect } from 'node:util'
import { Command, CommanderError } from 'commander'
import { isXenCrError } from '../errors.js'
import { attachRuntime, CliRuntime, type CliIo } from './context.js'
import { ExitCode, exitCodeFor } from './exit-codes.js'
import { registerCleanupCommand } from './cleanup.js'
import { registerCompletionCommand } from './completion.js'
import { registerConfigCommand } from './config.js'
import { registerFailbackCommand } from './failback.js'
import { registerFailoverCommand } from './failover.js'
import { registerHealthCheckCommand } from './health-check.js'
import { registerInventoryCommands } from './inventory.js'
import { registerJobCommand } from './job.js'
import { registerJobEditCommand } from './job-edit.js'
import { registerLabCommand } from './lab.js'
import { registerListCommand } from './list.js'
import { registerReplicasCommand } from './replicas.js'
import { registerRunCommand } from './run.js'
import { registerSeedCommand } from './seed.js'
import { registerVerifyCommand } from './verify.js'

function packageVersion(): string {
  try {
    // src/cli/ and dist/cli/ are both two levels below the package root
    const raw: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
    return typeof raw === 'object' && raw !== null && 'version' in raw && typeof raw.version === 'string'
      ? raw.version
      : '0.0.0'
  } catch {
    return '0.0.0'
  }
}

/**
 * Builds the commander program. Each command lives in its own file and registers itself;
 * actions reach their run's output, config and signal through `contextOf(command)`.
 */
export function buildProgram(
  io: Pick<CliIo, 'stdout' | 'stderr'> = { stdout: process.stdout, stderr: process.stderr },
): Command {
  const program = new Command('xen-cr')
    .description('Continuous replication of XenServer / XCP-ng VMs')
    .version(packageVersion(), '-V, --version')
    .option(
      '--config <file>',
      'config file (default: XEN_CR_CONFIG, else discovered: xen-cr.config.json, .xen-crrc*, package.json#xen-cr, $XDG_CONFIG_HOME/xen-cr/)',
    )
    .option(
      '--jobs-file <file>',
      "job store (default: the config's defaults.jobsFile, else $XDG_CONFIG_HOME/xen-cr/jobs.json)",
    )
    .option('--json', 'machine-readable output: one JSON object per line (NDJSON)')
    .option('--quiet', 'only results and errors')
    .option('--verbose', 'more detail, and stacks of unexpected errors')
    .option('--no-color', 'no colours (NO_COLOR is honoured too)')
    .option(
      '--connect-timeout <seconds>',
      'give up logging in to a pool after this long (default: timeouts.connect, 30)',
    )
    .option('--call-timeout <seconds>', 'one XAPI call attempt may take this long (default: timeouts.call, 300)')
    .option('--vm-timeout <seconds>', "one VM's pass may take this long, 0: no limit (default: timeouts.vm, 0)")
    .option('--run-timeout <seconds>', 'the whole command may take this long, 0: no limit (default: timeouts.run, 0)')
    // set before the subcommands exist: commander copies these settings into each at creation
    .exitOverride()
    .configureOutput({
      writeOut: text => io.stdout.write(text),
      writeErr: text => io.stderr.write(text),
    })
    .showHelpAfterError('(add --help for usage)')
  registerJobCommand(program)
  registerJobEditCommand(program)
  registerConfigCommand(program)
  registerLabCommand(program)
  registerRunCommand(program)
  registerListCommand(program)
  registerInventoryCommands(program)
  registerCompletionCommand(program)
  registerSeedCommand(program)
  registerFailoverCommand(program)
  registerFailbackCommand(program)
  registerReplicasCommand(program)
  registerCleanupCommand(program)
  registerHealthCheckCommand(program)
  registerVerifyCommand(program)
  return program
}

/** A cause is usually an Error; anything else is shown as inspect shows it, not as `[object Object]`. */
function describeCause(cause: unknown): string {
  if (cause instanceof Error) return cause.message
  return typeof cause === 'string' ? cause : inspect(cause)
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0] ?? text
}

/**
 * Runs the CLI with `argv` (without node and script) and resolves to the exit code; it never
 * throws and never exits the process. Errors become one `error` event (one line; the stack only
 * with --verbose, and only for errors that are not ours) and an exit code from `exit-codes.ts`.
 */
export async function run(argv: readonly string[], io: Partial<CliIo> = {}): Promise<number> {
  const fullIo: CliIo = {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    env: io.env ?? process.env,
    cwd: io.cwd ?? process.cwd(),
    ...(io.stdin === undefined ? {} : { stdin: io.stdin }),
    ...(io.signal === undefined ? {} : { signal: io.signal }),
    ...(io.now === undefined ? {} : { now: io.now }),
  }
  // With --json, stderr holds only JSON lines: commander's own text for a refused command line is
  // dropped, and the error event below says it instead.
  const json = argv.includes('--json')
  const discard = new Writable({ write: (_chunk, _encoding, done) => done() })
  const program = buildProgram(json ? { stdout: fullIo.stdout, stderr: discard } : fullIo)
  const runtime = new CliRuntime(program, fullIo)
  attachRuntime(program, runtime)
  try {
    await program.parseAsync([...argv], { from: 'user' })
  } catch (error) {
    const exitCode = exitCodeFor(error)
    runtime.exitCode = exitCode
    if (error instanceof CommanderError) {
      // commander has already printed its message (or the help), except with --json: an event then
      if (exitCode !== ExitCode.ok && json) {
        runtime.get().output.emit({
          kind: 'error',
          code: 'USAGE',
          message: firstLine(error.message.replace(/^error: /, '')),
          exitCode,
        })
      }
    } else {
      const output = runtime.get().output
      const verbose = runtime.get().options.verbose
      if (isXenCrError(error)) {
        output.emit({ kind: 'error', code: error.code, message: firstLine(error.message), exitCode })
        if (verbose && error.cause !== undefined) {
          output.emit({
            kind: 'debug',
            message: `caused by: ${describeCause(error.cause)}`,
          })
        }
      } else {
        const message = error instanceof Error ? error.message : String(error)
        const stack = verbose && error instanceof Error && error.stack !== undefined ? { stack: error.stack } : {}
        output.emit({
          kind: 'error',
          code: 'UNEXPECTED',
          message: `unexpected error: ${firstLine(message)}${verbose ? '' : ' (--verbose shows the stack)'}; please report it`,
          exitCode,
          ...stack,
        })
      }
    }
  } finally {
    await runtime.cleanup()
  }
  return runtime.exitCode
}
