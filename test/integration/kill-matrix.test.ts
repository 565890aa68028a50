import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KillMatrix, runMatrix } from './kill-trial.js'

// Why: a pass killed with SIGKILL runs no cleanup at all. Before every object was created with
// the job's keys and leftovers were swept by those keys (not by a blocked start), 18 of 51 such
// kills left debris no later pass removed: clones attached to nothing, snapshot disks of a
// rotation, an "[Importing…]" VM with start unblocked. Each trial here kills the real CLI at a
// point spread over the whole pass and checks that nothing of the kind is left.
const KILLS = Number(process.env['XEN_CR_KILL_TRIALS'] ?? 30)
const SEED = Number(process.env['XEN_CR_KILL_SEED'] ?? 20261201)

let matrix: KillMatrix | undefined
beforeAll(async () => {
  matrix = await KillMatrix.start()
}, 180_000)
afterAll(async () => {
  await matrix?.close()
})

describe('kill -9 matrix', () => {
  it(`SIGKILLs xen-cr run at ${KILLS} points over the pass: the next pass is a delta, the newest replica equals its snapshot, nothing is left`, async () => {
    const summary = await runMatrix(matrix!, KILLS, SEED)
    console.log(summary.line)
    for (const r of summary.failed)
      console.log(`trial ${r.trial} (kill after ${r.killAt} calls, ${r.phase}): ${r.problems.join('; ')}`)
    expect(summary.failed.map(r => `trial ${r.trial} (${r.phase}, ${r.killAt}): ${r.problems.join('; ')}`)).toEqual([])
    // the kills really happened mid-pass and spread over it
    expect(summary.killed).toBeGreaterThanOrEqual(KILLS)
    for (const step of ['snapshot', 'import', 'rotation']) expect(summary.phases[step] ?? 0).toBeGreaterThan(0)
  }, 900_000)
})
