import { run } from './program.js'

// Entry point of the `xen-cr` binary: everything lives in program.ts so tests can drive it
// in-process with their own argv, streams and environment.
process.exitCode = await run(process.argv.slice(2))
