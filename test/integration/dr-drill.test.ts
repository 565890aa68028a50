/**
 * examples/dr-drill.sh, run as an operator runs it (bash, the built binary, a lab it starts
 * itself): replicate, lose the source site, fail over, fail back as a delta, resume as a delta.
 * The byte counts it prints are checked against the VHD layout of exactly the blocks it wrote.
 */
import { spawn } from 'node:child_process'
import { readdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { builtBinary } from '../helpers/built.js'
import { makeTempDir } from '../helpers/tmp.js'
import { MiB, vhdLength } from './replication-fixture.js'

const SCRIPT = fileURLToPath(new URL('../../examples/dr-drill.sh', import.meta.url))

let tmp: { path: string; remove: () => Promise<void> } | undefined
afterEach(async () => {
  await tmp?.remove()
  tmp = undefined
})

function drill(xenCr: string, tmpdir: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT], { env: { ...process.env, XEN_CR: xenCr, TMPDIR: tmpdir } })
    let out = ''
    let err = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()))
    child.on('error', reject)
    child.on('close', code => resolve({ code, out, err }))
  })
}

describe('examples/dr-drill.sh', () => {
  it('rehearses a site loss end to end on the lab: every step as expected, the failback and the resumed pass deltas of exactly the blocks written', async () => {
    tmp = await makeTempDir()
    const { code, out, err } = await drill(`node ${builtBinary()}`, tmp.path)
    expect(err, out).not.toMatch(/DRILL FAILED/)
    expect(code, `${out}\n${err}`).toBe(0)
    // the default lab: web-01 (one 64 MiB disk), db-01 (128 MiB and 32 MiB)
    expect(out).toMatch(/^first pass: full, \d+ bytes in \d+ ms$/m)
    // one block written in each VM's first disk
    expect(out).toMatch(
      new RegExp(
        `^second pass: delta, ${vhdLength(64 * MiB, 1) + vhdLength(128 * MiB, 1) + vhdLength(32 * MiB, 0)} bytes`,
        'm',
      ),
    )
    expect(out).toContain('source pool down: run exits 4 (cannot reach the pool)')
    expect(out).toContain('running on the target: db-01 (failover), web-01 (failover)')
    // 2 blocks written in web-01 (failover), 1 in db-01 (failover): only those travel back
    const failback = vhdLength(64 * MiB, 2) + vhdLength(128 * MiB, 1) + vhdLength(32 * MiB, 0)
    expect(out).toMatch(new RegExp(`^failback: delta of 3 blocks, ${failback} bytes on 3 disks in \\d+ ms$`, 'm'))
    expect(out.match(/^job drill now replicates [0-9a-f-]{36} instead of [0-9a-f-]{36}$/gm)).toHaveLength(2)
    // one block written in the failed-back web-01 since: the job resumes with a delta of just that
    const resumed = vhdLength(64 * MiB, 1) + vhdLength(128 * MiB, 0) + vhdLength(32 * MiB, 0)
    expect(out).toMatch(new RegExp(`^resumed pass: delta, ${resumed} bytes in \\d+ ms$`, 'm'))
    expect(out).toMatch(/^failback \(delta\)\s+\d+ ms\s+\d+ bytes$/m)
    expect(out.trim().split('\n').at(-1)).toBe('DR drill passed')
    // the lab and its state are gone
    expect(await readdir(tmp.path)).toEqual([])
  }, 240_000)

  it('exits non-zero with one clear line, and leaves nothing, when a step fails', async () => {
    tmp = await makeTempDir()
    const { code, err } = await drill('false', tmp.path)
    expect(code).toBe(1)
    expect(err).toMatch(/^DRILL FAILED: xen-cr lab did not start$/m)
    expect(await readdir(tmp.path)).toEqual([])
  }, 60_000)
})
