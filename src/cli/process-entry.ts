import { AbortedError } from '../errors.js'
import type { CliIo } from './context.js'

/** A CLI's in-process entry: argv and io in, exit code out (program.ts `run`, xen-cr-seed.ts `runSeedDropIn`). */
export type CliEntry = (argv: readonly string[], io: Partial<CliIo>) => Promise<number>

/**
 * Runs `entry` as the process: the binaries keep everything else in-process so tests can drive
 * it with their own argv, streams and environment; here only the process concerns live.
 */
export async function runAsProcess(entry: CliEntry): Promise<void> {
  // SIGINT/SIGTERM abort the run's one AbortController, and the run then removes what it had
  // created. An impatient second Ctrl-C must not cut that cleanup short (it would strand a
  // half-imported disk on the target): it only says what is going on. A third one is a
  // deliberate "exit now", which leaves the cleanup unfinished and says so.
  const controller = new AbortController()
  let signals = 0
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++
    if (signals === 1) {
      controller.abort(new AbortedError(`interrupted by ${signal}`))
    } else if (signals === 2) {
      process.stderr.write(
        `xen-cr: ${signal} again: still removing what this run created; it exits when that is done (a third ${signal} exits now and leaves it unfinished)\n`,
      )
    } else {
      process.stderr.write(
        `xen-cr: ${signal} a third time: exiting without finishing the cleanup; the job's next pass or \`xen-cr cleanup <job>\` removes what is left\n`,
      )
      process.exit(130)
    }
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  // A reader that went away (`xen-cr --json run job | head -1`, a closed log pipe) must not kill
  // a pass halfway and strand a half-imported replica: output that cannot be written is dropped
  // (Node then discards later writes to the broken stream) and the work finishes and cleans up
  // as usual; the exit code still tells how it went.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {})

  const exitCode = await entry(process.argv.slice(2), { signal: controller.signal, stdin: process.stdin })
  process.exitCode = exitCode
  // The work is done and its outcome known: a signal now (systemd stopping the unit, a Ctrl-C
  // while sockets close) ends the process with that outcome. Without a handler Node would die
  // of the signal, and cron or systemd would see 130/143 for a pass that succeeded.
  const onLateSignal = (): void => process.exit(exitCode)
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
  process.on('SIGINT', onLateSignal)
  process.on('SIGTERM', onLateSignal)
  // A watchdog, not a shortcut: if a forgotten socket or timer keeps the loop alive, a cron run
  // must still end. unref() lets a clean process exit at once without waiting for it, so the
  // delay only costs a run that left something open. 5 s, not 2: an aborted transfer sends its
  // task.cancel fire-and-forget (xapi/xva-transfer.ts) and the run returns without its answer;
  // a busy host can take seconds to answer, and cutting the call leaves the task running there.
  setTimeout(() => process.exit(exitCode), 5_000).unref()
}
