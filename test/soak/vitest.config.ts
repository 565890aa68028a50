import { defineConfig } from 'vitest/config'

// `npm run soak` only: long trials that `npm test` leaves out.
export default defineConfig({
  test: {
    include: ['test/soak/**/*.soak.test.ts'],
    testTimeout: 24 * 3_600_000,
    hookTimeout: 180_000,
  },
})
