/**
 * A pass under its VM leases (`src/replication/pass.ts`): a VM whose lease was taken over while
 * its pass ran (its holder's renewals stalled past the lease time, and another controller took
 * it) must stop and be undone, not finish a replica beside the other controller's; a lease never
 * reaches a replica, although the snapshot copies it from the source VM.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { hostname } from 'node:os'
import { afterEach, describe, expect, it } from 'vitest'
import { leaseKeyPrefix, LEASE_KEY_PREFIX } from '../../src/replication/metadata.js'
import type { PassEvent } from '../../src/replication/events.js'
import { runPass } from '../../src/replication/pass.js'
import { currentProcessTable } from '../../src/replication/vm-lease.js'
import { OTHER_CONTROLLER, holdVmLease, vmLeaseEntries } from '../helpers/vm-lease.js'
import { jobSnapshots, makeJob, replicas, startFixture, type Fixture } from './replication-fixture.js'

let f: Fixture | undefined
afterEach(async () => {
  await f?.close()
  f = undefined
})

describe('a pass whose VM lease is taken over while it works', () => {
  it('stops that VM with LEASE_LOST, makes no replica, and leaves the lease to its new holder', async () => {
    f = await startFixture()
    const fixture = f
    const job = makeJob(fixture)
    // the snapshot hangs long enough for several renewals (every 250 ms of a 1 s lease)
    fixture.lab.control.injectFault('src', { kind: 'latency', method: 'VM.snapshot', ms: 4_000, nth: 1 })
    let taken: Promise<unknown> | undefined
    const result = await runPass({
      job,
      source: fixture.source,
      target: fixture.target,
      leaseTtlMs: 1_000,
      onEvent: (event: PassEvent) => {
        // another controller takes the lease over: an entry above ours, live
        if (event.kind === 'vm-start') taken = holdVmLease(fixture.source, fixture.vmUuid, job.id, { n: 1_000 })
      },
    })
    await taken
    expect(result.results).toMatchObject([{ status: 'failed', error: { code: 'LEASE_LOST' } }])
    expect(await replicas(fixture.target, job.id, fixture.vmUuid)).toEqual([])
    // the new holder's entry is untouched; ours is gone (released entries never go above it)
    const entries = await vmLeaseEntries(fixture.source, fixture.vmRef, job.id)
    expect([...entries.keys()]).toContain(`${leaseKeyPrefix(job.id)}1000`)
    expect([...entries.values()].filter(e => e.released === true)).toEqual([])
  }, 120_000)
})

describe('a pass stopped by a signal', () => {
  it('gives its lease back (a released entry), so another controller need not wait for it to expire', async () => {
    f = await startFixture()
    const fixture = f
    const job = makeJob(fixture)
    fixture.lab.control.injectFault('src', { kind: 'latency', method: 'VM.snapshot', ms: 4_000, nth: 1 })
    const controller = new AbortController()
    const result = await runPass({
      job,
      source: fixture.source,
      target: fixture.target,
      signal: controller.signal,
      onEvent: (event: PassEvent) => {
        if (event.kind === 'vm-start') controller.abort()
      },
    })
    expect(result.results).toMatchObject([{ status: 'failed', error: { code: 'ABORTED' } }])
    const entries = [...(await vmLeaseEntries(fixture.source, fixture.vmRef, job.id)).values()]
    expect(entries).toHaveLength(1)
    expect(entries[0]?.released).toBe(true)
  }, 120_000)
})

describe('a replica', () => {
  it("nor its source snapshot carries a lease entry, though XAPI's VM.snapshot copies the VM's", async () => {
    f = await startFixture()
    const job = makeJob(f)
    // another job's live lease on the VM too: every job's entries are left behind
    await holdVmLease(f.source, f.vmUuid, 'another-job')
    const result = await runPass({ job, source: f.source, target: f.target })
    expect(result.results).toMatchObject([{ status: 'success' }])
    // the live VM still has the other job's lease, which VM.snapshot copied; the job's snapshot drops it
    expect([...(await vmLeaseEntries(f.source, f.vmRef, 'another-job')).keys()]).toEqual([
      `${leaseKeyPrefix('another-job')}0`,
    ])
    const [snapshot] = await jobSnapshots(f.source, job.id, f.vmRef)
    expect(Object.keys(snapshot![1].other_config).filter(k => k.startsWith(LEASE_KEY_PREFIX))).toEqual([])
    const [replica] = await replicas(f.target, job.id, f.vmUuid)
    expect(Object.keys(replica![1].other_config).filter(k => k.startsWith(LEASE_KEY_PREFIX))).toEqual([])
    for (const vdi of replica![1].VBDs) {
      const vbd = await f.target.getRecord('VBD', vdi)
      if (vbd.type !== 'Disk') continue
      const disk = await f.target.getRecord('VDI', vbd.VDI)
      expect(Object.keys(disk.other_config).filter(k => k.startsWith(LEASE_KEY_PREFIX))).toEqual([])
    }
  }, 120_000)
})

describe('a pass finding the lease of a run that was killed', () => {
  it('takes it over at once when that run was a process of this host, later once expired, each with a warning', async () => {
    f = await startFixture()
    const job = makeJob(f)
    // a controller of this host killed with -9 while it held the lease (an hour left on it)
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    await once(child, 'spawn')
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
    const killed = { host: hostname(), pid: child.pid!, run: 'run-killed', pids: currentProcessTable()! }
    await holdVmLease(f.source, f.vmUuid, job.id, { owner: killed, ttlMs: 3_600_000, n: 3 })
    const events: PassEvent[] = []
    const first = await runPass({ job, source: f.source, target: f.target, onEvent: e => events.push(e) })
    expect(first.results).toMatchObject([{ status: 'success' }])
    const warned = (): PassEvent[] => events.filter(e => e.kind === 'warning' && e.code === 'LEASE_TAKEN_OVER')
    expect(warned()).toMatchObject([
      {
        vm: { uuid: f.vmUuid },
        message: expect.stringMatching(/run-killed.*process is gone from this host/) as string,
      },
    ])

    // a controller elsewhere, whose lease ran out: taken over as well, said so
    events.length = 0
    const entries = await vmLeaseEntries(f.source, f.vmRef, job.id)
    const top = Math.max(...[...entries.keys()].map(k => Number(k.split(':').at(-1))))
    await holdVmLease(f.source, f.vmUuid, job.id, { ttlMs: -1, n: top + 1 })
    const second = await runPass({ job, source: f.source, target: f.target, onEvent: e => events.push(e) })
    expect(second.results).toMatchObject([{ status: 'success' }])
    expect(warned()).toMatchObject([
      {
        vm: { uuid: f.vmUuid },
        message: expect.stringMatching(new RegExp(`${OTHER_CONTROLLER.run}.*expired`)) as string,
      },
    ])
  }, 120_000)
})
