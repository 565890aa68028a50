#!/usr/bin/env node
// Prints the lab's datamodel coverage table (messages and setters per class) for a built tree:
//   node scripts/lab-coverage.mjs [DIST]      DIST defaults to ./dist (npm run build first)
// Used to count coverage of an older build too: DIST may be the dist of another checkout, whose
// registry is probed by name only (an older registry has no NOT_IMPLEMENTED messages).
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const dist = resolve(process.argv[2] ?? 'dist')
const here = resolve('dist')
const { buildApi } = await import(pathToFileURL(`${dist}/lab/rpc/api.js`).href)
const { labCoverage, coverageTable } = await import(pathToFileURL(`${here}/lab/rpc/coverage.js`).href)
const registry = buildApi()
const probe = {
  names: () => registry.names(),
  answer: name => {
    const def = registry.names().includes(name) ? registry.lookup(name) : undefined
    if (def === undefined) return 'absent'
    if (def.notImplemented === true) return 'not-implemented'
    return def.removed === true ? 'removed' : 'implemented'
  },
}
console.log(coverageTable(labCoverage(probe)))
