import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

// `npm run test:xo` only: Xen Orchestra's real backup code against the lab. Not a project of the
// main config, so `npm test` never runs it.
export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    name: 'xo',
    include: ['test/xo/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 60_000,
  },
})
