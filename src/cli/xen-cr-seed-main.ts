import { runAsProcess } from './process-entry.js'
import { runSeedDropIn } from './xen-cr-seed.js'

// Entry point of the `xen-cr-seed` binary: the exit code is the real one — xo-cr-seed exited 0
// even after "Fatal error". Signals and exit code are handled as for `xen-cr` (process-entry.ts).
await runAsProcess(runSeedDropIn)
