import { readFile } from 'node:fs/promises'
import { Worker } from 'node:worker_threads'
import ts from 'typescript'
import { beforeAll, describe, expect, it } from 'vitest'

/*
 * sampleBlocks runs in a worker thread here, never in the test worker: a regression to an
 * endless loop is synchronous, so in-process it would freeze this vitest worker at full CPU
 * with no test timeout able to fire (as happened once). A worker can be terminated, which turns
 * the hang into a failure. The bound is a hang detector for microseconds of work, not a timing.
 */
const HANG_MS = 15_000

let script: string

beforeAll(async () => {
  const source = await readFile(new URL('./sample-blocks.ts', import.meta.url), 'utf8')
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
  }).outputText
  script = `
    const { parentPort, workerData: w } = require('node:worker_threads')
    const mod = {}
    ;(function (exports) { ${js} })(mod)
    let calls = 0
    const random = () => (calls < w.draws.length ? w.draws[calls++] : (calls++, w.rest))
    try {
      parentPort.postMessage({ value: mod.sampleBlocks(w.blocks, w.count, random), calls })
    } catch (error) {
      parentPort.postMessage({ error: { name: error.name, message: error.message } })
    }`
})

type Outcome = { value: number[]; calls: number } | { error: { name: string; message: string } }

/** sampleBlocks(blocks, count, random) where random returns `draws` in turn, then always `rest`. */
function pick(blocks: number, count: number, draws: readonly unknown[], rest: unknown): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(script, { eval: true, workerData: { blocks, count, draws, rest } })
    const timer = setTimeout(() => {
      void worker.terminate()
      reject(new Error(`sampleBlocks(${blocks}, ${count}, …) did not return within ${HANG_MS} ms: it loops forever`))
    }, HANG_MS)
    worker.once('message', (outcome: Outcome) => {
      clearTimeout(timer)
      void worker.terminate()
      resolve(outcome)
    })
    worker.once('error', error => {
      clearTimeout(timer)
      reject(error)
    })
  })
}

describe('sampleBlocks always returns, whatever the random source', () => {
  it(
    'a source stuck on one number (the seed-cli test: picks [0, 0.2] then 0.5 for a 4-block disk)',
    async () => {
      expect(await pick(8, 2, [0, 0.2], 0.5)).toEqual({ value: [0, 1], calls: 2 })
      expect(await pick(4, 2, [], 0.5)).toEqual({ value: [2, 3], calls: 2 })
      expect(await pick(4, 3, [], 0.9)).toEqual({ value: [0, 1, 3], calls: 3 })
    },
    4 * HANG_MS,
  )

  it(
    'a source that returns NaN or nothing counts those draws as 0',
    async () => {
      expect(await pick(8, 3, [], Number.NaN)).toEqual({ value: [0, 1, 2], calls: 3 })
      expect(await pick(8, 2, [0.5], undefined)).toEqual({ value: [0, 4], calls: 2 })
    },
    4 * HANG_MS,
  )

  it(
    'draws outside [0, 1) are clamped into the disk',
    async () => {
      expect(await pick(10, 4, [Number.POSITIVE_INFINITY, -5, 1.5, 0.85], 0)).toEqual({ value: [0, 1, 8, 9], calls: 4 })
    },
    4 * HANG_MS,
  )

  it(
    'every block, without a draw, when the sample is as large as the disk',
    async () => {
      expect(await pick(5, 8, [], 0.5)).toEqual({ value: [0, 1, 2, 3, 4], calls: 0 })
      expect(await pick(0, 8, [], 0.5)).toEqual({ value: [], calls: 0 })
    },
    4 * HANG_MS,
  )

  it(
    'refuses a disk size or sample size that is not a non-negative integer (a NaN size from a bad record)',
    async () => {
      for (const [blocks, count] of [
        [Number.NaN, 8],
        [-1, 2],
        [4.5, 2],
        [8, Number.NaN],
        [8, -1],
      ] as const) {
        expect(await pick(blocks, count, [], 0.5)).toMatchObject({ error: { name: 'RangeError' } })
      }
    },
    6 * HANG_MS,
  )
})
