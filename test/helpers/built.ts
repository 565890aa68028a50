import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/**
 * Paths of the built product (`npm run build`, which `npm test` runs before vitest). Tests that
 * need a real process — the binary as cron runs it, the lab as operators start it — use these
 * rather than bundling sources themselves, so they exercise exactly what ships.
 */
export const XEN_CR_BIN = fileURLToPath(new URL('../../bin/xen-cr.js', import.meta.url))

/** Absolute path of a module under `dist/` (e.g. `xapi/client.js`); fails clearly if unbuilt. */
export function builtModule(relative: string): string {
  const path = fileURLToPath(new URL(`../../dist/${relative}`, import.meta.url))
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build\` first (npm test does)`)
  return path
}

/** The binary, after checking that the build it loads exists. */
export function builtBinary(): string {
  builtModule('cli/main.js')
  return XEN_CR_BIN
}
