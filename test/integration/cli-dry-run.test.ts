/**
 * `run --dry-run` names every object the pass would delete — each replica beyond the retention
 * and each older source snapshot, by name and uuid — and deletes none of them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import { JobStore } from '../../src/jobs/job-store.js'
import { KEYS } from '../../src/replication/metadata.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { jobSnapshots, makeJob, replicas, startFixture, type Fixture } from './replication-fixture.js'

let f: Fixture

beforeAll(async () => {
  f = await startFixture()
  await new JobStore(`${f.lab.dir}/jobs.json`).add(makeJob(f, {}, 1))
})
afterAll(async () => {
  await f?.close()
})

async function cli(args: readonly string[], now: Date) {
  const stdout = new CaptureStream()
  const stderr = new CaptureStream()
  const code = await run(['--config', f.lab.configPath, ...args], {
    stdout,
    stderr,
    env: {},
    cwd: f.lab.dir,
    now: () => now,
  })
  return { code, lines: stdout.lines, err: stderr.text }
}

describe('run --dry-run', () => {
  it('names the replica and the source snapshot it would delete, and deletes nothing', async () => {
    const start = Date.now()
    expect((await cli(['run', 'nightly'], new Date(start))).code).toBe(0)
    const job = makeJob(f)
    const [replica] = await replicas(f.target, job.id, f.vmUuid)
    const [snapshot] = await jobSnapshots(f.source, job.id, f.vmRef)
    expect(replica).toBeDefined()
    expect(snapshot).toBeDefined()

    const dry = await cli(['run', 'nightly', '--dry-run'], new Date(start + 3_600_000))
    expect(dry.code).toBe(0)
    const [, replicaRecord] = replica!
    const [, snapshotRecord] = snapshot!
    expect(dry.lines).toContain(
      `    replica ${replicaRecord.name_label} (${replicaRecord.uuid}), of ${replicaRecord.other_config[KEYS.datetime]}`,
    )
    expect(dry.lines).toContain(`    snapshot ${snapshotRecord.name_label} (${snapshotRecord.uuid})`)
    expect((await replicas(f.target, job.id, f.vmUuid)).map(([, r]) => r.uuid)).toEqual([replicaRecord.uuid])
    expect((await jobSnapshots(f.source, job.id, f.vmRef)).map(([, s]) => s.uuid)).toEqual([snapshotRecord.uuid])
  })
})
