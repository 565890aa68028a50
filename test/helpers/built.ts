import { existsSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Paths of the built product (`npm run build`, which `npm test` runs before vitest). Tests that
 * need a real process — the binary as cron runs it, the lab as operators start it — use these
 * rather than bundling sources themselves, so they exercise exactly what ships.
 */
export const XEN_CR_BIN = fileURLToPath(new URL('../../bin/xen-cr.js', import.meta.url))

const SRC = fileURLToPath(new URL('../../src', import.meta.url))
const DIST = fileURLToPath(new URL('../../dist', import.meta.url))

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(entry => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : []
  })
}

/**
 * Sources edited (or added) since the last build: a test of `dist/` would otherwise pass or fail
 * on yesterday's code. One stat per file pair (tsc rewrites every output on each build), so a
 * few milliseconds.
 */
function staleSources(): string[] {
  return sourceFiles(SRC)
    .map(path => relative(SRC, path))
    .filter(path => {
      const built = join(DIST, path.replace(/\.ts$/, '.js'))
      return !existsSync(built) || statSync(join(SRC, path)).mtimeMs > statSync(built).mtimeMs
    })
}

/** Absolute path of a module under `dist/` (e.g. `xapi/client.js`); fails clearly if unbuilt or older than `src/`. */
export function builtModule(relativePath: string): string {
  const path = join(DIST, relativePath)
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build\` first (npm test does)`)
  const stale = staleSources()
  if (stale.length > 0) {
    const more = stale.length > 1 ? ` and ${stale.length - 1} more` : ''
    throw new Error(`dist/ is older than src/${stale[0]}${more}: run \`npm run build\` first (npm test does)`)
  }
  return path
}

/** The binary, after checking that the build it loads exists and is current. */
export function builtBinary(): string {
  builtModule('cli/main.js')
  return XEN_CR_BIN
}
