import { AbortedError } from '../errors.js'
import { runSeedDropIn } from './xen-cr-seed.js'

// Entry point of the `xen-cr-seed` binary (see main.ts for the same process concerns): signals
// abort the run, and the exit code is the real one — xo-cr-seed exited 0 even after "Fatal error".
const controller = new AbortController()
let signals = 0
const onSignal = (signal: NodeJS.Signals): void => {
  signals++
  if (signals > 1) process.exit(130)
  controller.abort(new AbortedError(`interrupted by ${signal}`))
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)

const exitCode = await runSeedDropIn(process.argv.slice(2), { signal: controller.signal, stdin: process.stdin })
process.off('SIGINT', onSignal)
process.off('SIGTERM', onSignal)
process.exitCode = exitCode
setTimeout(() => process.exit(exitCode), 5_000).unref()
