import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KillMatrix, runMatrix } from '../integration/kill-trial.js'

// `npm run soak`: the kill -9 trial of `test/integration/kill-matrix.test.ts`, many more times
// (XEN_CR_SOAK_TRIALS, default 300; XEN_CR_SOAK_SEED to replay). Not part of `npm test`.
const KILLS = Number(process.env['XEN_CR_SOAK_TRIALS'] ?? 300)
const SEED = Number(process.env['XEN_CR_SOAK_SEED'] ?? Date.now() % 2 ** 31)

let matrix: KillMatrix | undefined
beforeAll(async () => {
  matrix = await KillMatrix.start()
}, 180_000)
afterAll(async () => {
  await matrix?.close()
})

describe('kill -9 soak', () => {
  it(
    `SIGKILLs xen-cr run ${KILLS} times`,
    async () => {
      let n = 0
      let failed = 0
      const summary = await runMatrix(matrix!, KILLS, SEED, {
        onTrial: r => {
          n++
          if (r.problems.length > 0) failed++
          // a running tally, so that a soak stopped early still says what it saw
          if (r.problems.length > 0 || n % 10 === 0)
            console.log(
              `soak trial ${n} (seed ${SEED}): ${r.phase} after ${r.killAt} calls${r.problems.length === 0 ? ', ok' : `: ${r.problems.join('; ')}`}; ${failed} failed so far`,
            )
        },
      })
      console.log(summary.line)
      expect(summary.failed.map(r => `trial ${r.trial} (${r.phase}, ${r.killAt}): ${r.problems.join('; ')}`)).toEqual(
        [],
      )
      expect(summary.killed).toBeGreaterThanOrEqual(KILLS)
    },
    24 * 3_600_000,
  )
})
