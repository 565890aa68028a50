import { Command } from 'commander'
import { registerLabCommand } from './lab.js'

/**
 * Builds the commander program. Each command lives in its own file and registers itself.
 */
export function buildProgram(): Command {
  const program = new Command('xen-cr')
    .description('Continuous replication of XenServer / XCP-ng VMs')
    .option('--config <file>', 'config file (default: discovered by cosmiconfig)')
    .option('--json', 'machine-readable output')
    .option('--quiet', 'only errors')
    .option('--verbose', 'more detail')
    .option('--no-color', 'no colours')
  registerLabCommand(program)
  return program
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function run(argv: readonly string[]): Promise<number> {
  const program = buildProgram()
  program.exitOverride()
  try {
    await program.parseAsync([...argv], { from: 'user' })
    return typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (error) {
    if (error instanceof Error && 'exitCode' in error && typeof error.exitCode === 'number') {
      return error.exitCode === 0 ? 0 : 2
    }
    throw error
  }
}
