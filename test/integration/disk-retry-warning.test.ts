/**
 * A disk transfer cut mid-stream starts again on its own (delta/transfer-disk.ts); the operator
 * is told so in one warning line, and a script in one `warning` event, while the pass succeeds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DISK_RETRY } from '../../src/xapi/retry.js'
import { disksOf, fixtureCli, jobCreateArgs, startFixture, type Fixture } from './replication-fixture.js'

const JOB = 'retried'
let f: Fixture

const cli = (args: readonly string[]): ReturnType<typeof fixtureCli> => fixtureCli(f, args, { NO_COLOR: '1' })

let seed = 50
let disks: string[] = []
/**
 * A guest write of a whole 2 MiB block on each disk, so that every delta stream passes 1 MiB:
 * the cut fires on whichever import or export comes first.
 */
async function write(): Promise<void> {
  for (const disk of disks) await f.lab.control.writeGuestData('src', disk, { blocks: [0], seed: seed++ })
}

beforeAll(async () => {
  f = await startFixture()
  disks = await Promise.all(
    (await disksOf(f.source, f.vmRef)).map(async ref => (await f.source.getRecord('VDI', ref)).uuid),
  )
  const created = await cli(jobCreateArgs(f, JOB))
  expect(created.code, created.err).toBe(0)
  const first = await cli(['run', JOB])
  expect(first.code, first.err).toBe(0)
}, 120_000)

afterAll(async () => {
  await f?.close()
})

describe('a disk transfer restarted after a cut', () => {
  it('is one DISK_TRANSFER_RETRIED warning event naming VM, disk, attempt and cause; the pass is a delta', async () => {
    // Why: the per-disk retry restarted the disk silently; a flaky link was invisible until it
    // failed a pass.
    await write()
    f.lab.control.injectFault('src', { kind: 'data-path', direction: 'export', cutAfterBytes: 1024 * 1024, nth: 1 })
    const { code, out, err } = await cli(['--json', 'run', JOB])
    expect(f.lab.control.listFaults('src')).toEqual([])
    expect(code, err).toBe(0)
    const events = `${out}\n${err}`
      .split('\n')
      .filter(line => line.startsWith('{'))
      .map(line => JSON.parse(line) as { kind: string; code?: string; message?: string; vm?: { uuid: string } })
    const retried = events.filter(e => e.kind === 'warning' && e.code === 'DISK_TRANSFER_RETRIED')
    expect(retried).toHaveLength(1)
    expect(retried[0]!.vm?.uuid).toBe(f.vmUuid)
    expect(retried[0]!.message).toMatch(
      new RegExp(
        `^disk \\d "web (root|data)" \\([0-9a-f-]{36}\\) to SR Replica A: .*\\[[A-Z_]+\\]\\); starting it again, attempt 2 of ${DISK_RETRY.attempts}$`,
      ),
    )
    expect(events.find(e => e.kind === 'vm-done')).toMatchObject({ result: { status: 'success', mode: 'delta' } })
  }, 120_000)

  it('is one warning line on stderr without --json', async () => {
    await write()
    f.lab.control.injectFault('tgt', { kind: 'data-path', direction: 'import', cutAfterBytes: 1024 * 1024, nth: 1 })
    const { code, out, err } = await cli(['run', JOB])
    expect(code, err).toBe(0)
    const lines = err.split('\n').filter(line => line.includes('[DISK_TRANSFER_RETRIED]'))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      /^\S+Z warning web: disk \d "web (root|data)" .* attempt 2 of \d+ \[DISK_TRANSFER_RETRIED\]$/,
    )
    expect(out).toMatch(/ok web: delta/)
  }, 120_000)
})
