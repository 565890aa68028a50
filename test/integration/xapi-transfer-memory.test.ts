/**
 * Issue 3: a client transfer must never buffer the disk. One export → import of a VHD with
 * 1 GiB allocated runs through the client in a child process (so the lab's memory and the test
 * runner's do not count), which samples what its JavaScript side holds — `heapUsed + external`,
 * where every Buffer is counted — every 10 ms. A client that collected a body, missed
 * backpressure or read everything to compute a Content-Length would hold a gigabyte there for
 * seconds; a streaming one holds its live heap (~12 MiB) plus the dead Buffers V8 lets pile up
 * before a collection (up to ~64 MiB, measured 58–73 MiB peaks). The 256 MiB bound sits far from
 * both, and the figures are allocation-driven, not time-driven, so a busy machine does not move
 * them. The bytes are checked too: every block arrives and the target reads as the source.
 *
 * The RSS comparison of a 256 MiB and a 4 GiB transfer, which CPU load does move, is a
 * benchmark: `node test/bench/transfer-memory.bench.mjs` (`npm run bench`).
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Lab } from '../../src/lab/start.js'
import { builtModule } from '../helpers/built.js'
import { startTempLab } from '../helpers/lab.js'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
const BLOCK = 2 * MiB
const HELD_BOUND = 256 * MiB

interface ChildResult {
  bytes: number
  heldBefore: number
  heldPeak: number
  samples: number
  targetUtilisation: number
  targetVdiUuid: string
}

function runChild(file: string, job: object): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], {
      env: { ...process.env, XEN_CR_MEMORY_JOB: JSON.stringify(job) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()))
    child.on('error', reject)
    child.on('close', code => {
      if (code !== 0) reject(new Error(`memory child exited with ${code}: ${err.trim()}`))
      else resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as ChildResult)
    })
  })
}

/** sha256 of a disk's whole content as its guest reads it, 64 MiB at a time. */
async function guestDigest(lab: Lab, vdi: string, size: number): Promise<string> {
  const hash = createHash('sha256')
  for (let offset = 0; offset < size; offset += 64 * MiB) {
    hash.update(await lab.control.readGuestData('mem', vdi, offset, Math.min(64 * MiB, size - offset)))
  }
  return hash.digest('hex')
}

describe('client transfer memory', () => {
  let lab: Lab

  beforeAll(async () => {
    lab = await startTempLab({
      pools: [
        {
          name: 'mem',
          srs: [{ name: 'sr', size: '8 GiB' }],
          vms: [{ name: 'full', powerState: 'Halted', disks: [{ size: '1 GiB', filled: '1 GiB', seed: 3 }] }],
        },
      ],
    })
  })
  afterAll(async () => {
    await lab?.stop()
  })

  it('moves 1 GiB with at most 256 MiB of heap and Buffers held at any time', { timeout: 240_000 }, async () => {
    const pool = lab.pools[0]!
    const source = lab.control.findVm('mem', 'full')!.vdis[0]!.uuid

    builtModule('xapi/transfer.js')
    const child = fileURLToPath(new URL('./xapi-transfer-memory.child.mjs', import.meta.url))
    const run = await runChild(child, {
      url: pool.url,
      user: pool.user,
      password: pool.password,
      sourceVdiUuid: source,
    })

    // The data really went through: footer copy + header + locator gap, a BAT of 512 entries,
    // every block with its bitmap sector, the footer; the target holds all of it.
    expect(run.bytes).toBe(2048 + 4 * 512 + 512 * (BLOCK + 512) + 512)
    expect(run.targetUtilisation).toBe(GiB)
    expect(await guestDigest(lab, run.targetVdiUuid, GiB)).toBe(await guestDigest(lab, source, GiB))

    // The sampler ran throughout (a transfer of 1 GiB takes seconds), so a held disk is seen.
    expect(run.samples).toBeGreaterThan(10)
    console.info(
      `1 GiB transfer: heap + external ${(run.heldBefore / MiB).toFixed(1)} MiB before, ` +
        `peak ${(run.heldPeak / MiB).toFixed(1)} MiB over ${run.samples} samples`,
    )
    expect(run.heldPeak).toBeLessThan(HELD_BOUND)
  })
})
