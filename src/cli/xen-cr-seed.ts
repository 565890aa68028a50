/**
 * `xen-cr-seed`: a drop-in for Xen Orchestra's `xo-cr-seed` 1.0.2. It accepts that tool's six
 * positionals (source URL with credentials, snapshot uuid, target URL, target VM uuid, job id,
 * schedule id) and the seed document's four-uuid form (snapshot, target VM, job id, schedule
 * id; pools from the job store or the configured pools), and runs `xen-cr seed` with them — so
 * the same validation, metadata and exit codes (5 on refusal, never "Fatal error" with exit 0).
 */
import { Command, CommanderError } from 'commander'
import { run } from './program.js'
import type { CliIo } from './context.js'
import { ExitCode } from './exit-codes.js'

interface DropInFlags {
  config?: string
  jobsFile?: string
  json?: boolean
  quiet?: boolean
  verbose?: boolean
  color?: boolean
  allowUnauthorized?: boolean
  dryRun?: boolean
  verify?: boolean | string
  sampleBlocks?: string
}

const USAGE = [
  'xen-cr-seed <source XAPI URL> <source snapshot uuid> <target XAPI URL> <target VM uuid> <job id> <schedule id>',
  'xen-cr-seed <source snapshot uuid> <target VM uuid> <job id> <schedule id>    (pools from the job store or the config)',
]

function buildDropIn(io: Pick<CliIo, 'stdout' | 'stderr'>): Command {
  return new Command('xen-cr-seed')
    .description(
      `attach continuous-replication seed metadata to a hand-made copy (drop-in for xo-cr-seed)\n\n  ${USAGE.join('\n  ')}`,
    )
    .argument('<args...>', 'six positionals (xo-cr-seed) or four uuids')
    .option('--config <file>', 'xen-cr config file (pools, credentials)')
    .option('--jobs-file <file>', 'job store')
    .option(
      '--allow-unauthorized',
      'accept untrusted TLS certificates (xo-cr-seed never checked them; xen-cr-seed does)',
    )
    .option('--dry-run', 'check and show what would be written, write nothing')
    .option('--verify [mode]', 'compare each disk pair first: full sha256 (bare --verify) or --verify=sample')
    .option('--sample-blocks <n>', 'blocks per disk for --verify=sample')
    .option('--json', 'NDJSON output')
    .option('--quiet', 'only results and errors')
    .option('--verbose', 'more detail')
    .option('--no-color', 'no colours')
    .exitOverride()
    .configureOutput({ writeOut: text => io.stdout.write(text), writeErr: text => io.stderr.write(text) })
    .showHelpAfterError('(add --help for usage)')
}

/**
 * The `xen-cr seed` argv equivalent to a drop-in invocation.
 * @throws CommanderError-style usage message as a string when the positionals fit neither form
 */
export function translateDropInArgs(positionals: readonly string[], flags: DropInFlags): string[] | string {
  let seedArgs: string[]
  if (positionals.length === 6) {
    const [sourceUrl, snapshot, targetUrl, targetVm, job, schedule] = positionals as [
      string,
      string,
      string,
      string,
      string,
      string,
    ]
    seedArgs = [
      '--source',
      sourceUrl,
      '--snapshot',
      snapshot,
      '--target',
      targetUrl,
      '--target-vm',
      targetVm,
      '--job',
      job,
      '--schedule',
      schedule,
    ]
  } else if (positionals.length === 4) {
    const [snapshot, targetVm, job, schedule] = positionals as [string, string, string, string]
    seedArgs = ['--snapshot', snapshot, '--target-vm', targetVm, '--job', job, '--schedule', schedule]
  } else {
    return `expected 6 arguments (xo-cr-seed form) or 4 uuids, got ${positionals.length}\nusage:\n  ${USAGE.join('\n  ')}`
  }
  const global = [
    ...(flags.config === undefined ? [] : ['--config', flags.config]),
    ...(flags.jobsFile === undefined ? [] : ['--jobs-file', flags.jobsFile]),
    ...(flags.json === true ? ['--json'] : []),
    ...(flags.quiet === true ? ['--quiet'] : []),
    ...(flags.verbose === true ? ['--verbose'] : []),
    ...(flags.color === false ? ['--no-color'] : []),
  ]
  const extra = [
    ...(flags.allowUnauthorized === true ? ['--allow-unauthorized'] : []),
    ...(flags.dryRun === true ? ['--dry-run'] : []),
    ...(flags.verify === undefined || flags.verify === false
      ? []
      : flags.verify === true
        ? ['--verify']
        : [`--verify=${flags.verify}`]),
    ...(flags.sampleBlocks === undefined ? [] : ['--sample-blocks', flags.sampleBlocks]),
  ]
  return [...global, 'seed', ...seedArgs, ...extra, '--drop-in']
}

/** Runs `xen-cr-seed` with `argv` (without node and script); resolves to the exit code, never throws. */
export async function runSeedDropIn(argv: readonly string[], io: Partial<CliIo> = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout
  const stderr = io.stderr ?? process.stderr
  const program = buildDropIn({ stdout, stderr })
  let positionals: string[] = []
  try {
    program.action((args: string[]) => {
      positionals = args
    })
    // An optional option-argument would swallow the next positional (a uuid): a bare --verify
    // means full here, and the sample mode is spelled --verify=sample.
    await program.parseAsync(
      argv.map(a => (a === '--verify' ? '--verify=full' : a)),
      { from: 'user' },
    )
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage
    throw error
  }
  const translated = translateDropInArgs(positionals, program.opts<DropInFlags>())
  if (typeof translated === 'string') {
    stderr.write(`error: ${translated}\n`)
    return ExitCode.usage
  }
  return run(translated, io)
}
