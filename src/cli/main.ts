import { AbortedError } from '../errors.js'
import { run } from './program.js'

// Entry point of the `xen-cr` binary: everything lives in program.ts so tests can drive it
// in-process with their own argv, streams and environment. Here only the process concerns:
// signals abort the run's one AbortController (a second signal exits at once), and the exit code.
const controller = new AbortController()
let signals = 0
const onSignal = (signal: NodeJS.Signals): void => {
  signals++
  if (signals > 1) process.exit(130)
  controller.abort(new AbortedError(`interrupted by ${signal}`))
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)

const exitCode = await run(process.argv.slice(2), { signal: controller.signal, stdin: process.stdin })
process.off('SIGINT', onSignal)
process.off('SIGTERM', onSignal)
process.exitCode = exitCode
// A watchdog, not a shortcut: if a forgotten socket or timer keeps the loop alive, a cron run
// must still end. unref() lets a clean process exit immediately without waiting for it.
setTimeout(() => process.exit(exitCode), 2_000).unref()
