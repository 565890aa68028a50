import { runAsProcess } from './process-entry.js'
import { run } from './program.js'

// Entry point of the `xen-cr` binary: everything lives in program.ts so tests can drive it
// in-process; process-entry.ts holds the signal and exit-code handling.
await runAsProcess(run)
