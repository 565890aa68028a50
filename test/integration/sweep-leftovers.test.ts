/**
 * What a pass's own leftovers sweep finds without reading whole classes: a clone made by a
 * `VDI.clone` whose task vanished before it said which disk it made (the pass fails with
 * TASK_DESTROYED and cannot undo what it never learnt of), and the finished tasks whose
 * `task.destroy` failed. `xen-cr cleanup` must find the same. After a pass that left the VM
 * tidy, the next one makes no read for leftovers at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KEYS } from '../../src/replication/metadata.js'
import type { Ref } from '../../src/xapi/types.js'
import { disksOf, fixtureCli, jobCreateArgs, replicas, startFixture, type Fixture } from './replication-fixture.js'

const JOB = 'sweep'
let f: Fixture
let jobId: string

interface Event {
  readonly kind: string
  readonly code?: string
  readonly message?: string
  readonly result?: { status: string; mode?: string }
  readonly remove?: readonly { uuid: string; kind: string }[]
}

async function cli(args: readonly string[]): Promise<{ code: number; events: Event[]; err: string }> {
  const { code, out, err } = await fixtureCli(f, args)
  const events = `${out}\n${err}`
    .split('\n')
    .filter(line => line.startsWith('{'))
    .map(line => JSON.parse(line) as Event)
  return { code, events, err }
}

let seed = 10
async function pass(): Promise<Event[]> {
  await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [0], seed: seed++ })
  const { code, events, err } = await cli(['--json', 'run', JOB])
  expect(code, err).toBe(0)
  expect(events.filter(e => e.kind === 'vm-done').map(e => e.result)).toMatchObject([
    { status: 'success', mode: 'delta' },
  ])
  return events
}

/** A pass of the job that fails (its replica's VBD.create refused once): exit 1, the VM left untidy. */
async function failedPass(): Promise<void> {
  f.lab.control.injectFault('tgt', {
    kind: 'error',
    method: 'VBD.create',
    code: 'HANDLE_INVALID',
    params: ['VDI', 'OpaqueRef:gone'],
    nth: 1,
  })
  try {
    expect((await cli(['--json', 'run', JOB])).code).toBe(1)
  } finally {
    f.lab.control.clearFaults()
  }
}

/**
 * What the lost `VDI.clone` of a pass made: a clone of the newest replica's first disk, attached
 * to nothing, carrying that disk's keys (XAPI copies `other_config` and the name to a clone).
 */
async function lostClone(): Promise<{ ref: Ref<'VDI'>; uuid: string }> {
  const newest = (await replicas(f.target, jobId, f.vmUuid)).at(-1)!
  const [disk] = await disksOf(f.target, newest[0])
  const ref = await f.target.call<Ref<'VDI'>>('VDI.clone', [disk, {}])
  const clone = await f.target.getRecord('VDI', ref)
  expect(clone.other_config[KEYS.job]).toBe(jobId)
  expect(clone.VBDs).toEqual([])
  return { ref, uuid: clone.uuid }
}

beforeAll(async () => {
  f = await startFixture()
  const created = await cli(jobCreateArgs(f, JOB, '--retention', '2'))
  expect(created.code, created.err).toBe(0)
  const first = await cli(['--json', 'run', JOB])
  expect(first.code, first.err).toBe(0)
  const vms = await f.target.getAllRecords('VM')
  jobId = [...vms.values()].find(vm => vm.other_config[KEYS.vm] === f.vmUuid)!.other_config[KEYS.job]!
}, 120_000)

afterAll(async () => {
  await f?.close()
})

describe("the pass's leftovers sweep", () => {
  it('finds a clone whose VDI.clone task vanished before saying what it made, as `xen-cr cleanup` does', async () => {
    // Why: the sweep read the target's disks again only when an incomplete replica VM showed a
    // cut pass; a pass that failed with TASK_DESTROYED had undone its VM, so the clone stayed.
    const clone = await lostClone()
    // The pass that lost it failed: a pass that succeeded with no failed call leaves its lease's
    // tombstone tidy, and the next pass then looks no further than its records (the clone is in
    // none of them). Here, another failure stands for the lost task's.
    await failedPass()
    const dry = await cli(['--json', 'cleanup', JOB, '--dry-run'])
    expect(dry.code, dry.err).toBe(0)
    const plan = dry.events.find(e => e.kind === 'cleanup-plan')
    expect(plan?.remove).toEqual([expect.objectContaining({ uuid: clone.uuid, kind: 'disk' })])

    const events = await pass()
    const removed = events.filter(e => e.code === 'LEFTOVERS_REMOVED').map(e => e.message)
    expect(removed).toEqual([expect.stringContaining(clone.uuid)])
    await expect(f.target.getRecord('VDI', clone.ref)).rejects.toMatchObject({ code: 'XAPI_HANDLE_INVALID' })

    // and `xen-cr cleanup` removes one too
    const again = await lostClone()
    const cleaned = await cli(['--json', 'cleanup', JOB])
    expect(cleaned.code, cleaned.err).toBe(0)
    await expect(f.target.getRecord('VDI', again.ref)).rejects.toMatchObject({ code: 'XAPI_HANDLE_INVALID' })
  }, 120_000)

  it("removes finished tasks that made the job's objects or moved its disks, on both pools, and no other", async () => {
    // Why: a task whose task.destroy failed stayed for good (only `xen-cr cleanup` removed the
    // transfer tasks). The pass's only tasks are its transfers' (VM.snapshot and VDI.clone are
    // plain calls); a finished Async task that made a job's object is the unit tests' business.
    f.lab.control.injectFault('src', {
      kind: 'error',
      method: 'task.destroy',
      code: 'OPERATION_NOT_ALLOWED',
      params: ['refused by the test'],
    })
    f.lab.control.injectFault('tgt', {
      kind: 'error',
      method: 'task.destroy',
      code: 'OPERATION_NOT_ALLOWED',
      params: ['refused by the test'],
    })
    // someone else's finished task: never the job's
    const foreign = await f.target.call<Ref<'task'>>('task.create', ['backup of something else', ''])
    await f.target.call('task.set_status', [foreign, 'success'])
    try {
      await pass()
    } finally {
      f.lab.control.clearFaults()
    }
    const labels = async (client: Fixture['source']): Promise<string[]> =>
      [...(await client.getAllRecords('task')).values()].map(t => t.name_label).sort()
    const left = { source: await labels(f.source), target: await labels(f.target) }
    // every task of the pass stayed (a pass makes them all, then fails to destroy each)
    expect(left.source).toEqual(expect.arrayContaining([expect.stringMatching(/^xen-cr: export VDI /)]))
    expect(left.target).toEqual(expect.arrayContaining([expect.stringMatching(/^xen-cr: import VDI /)]))

    const events = await pass()
    expect(events.filter(e => e.code === 'CLEANUP_FAILED')).toEqual([])
    const removed = events.filter(e => e.code === 'LEFTOVERS_REMOVED').map(e => e.message ?? '')
    expect(removed).toHaveLength(1)
    for (const label of ['xen-cr: export VDI', 'xen-cr: import VDI']) expect(removed[0]).toContain(`task ${label}`)
    const after = { source: await labels(f.source), target: await labels(f.target) }
    // what remains names nothing of the job's: the destroys of rotation, the host's own tasks
    for (const label of [...after.source, ...after.target])
      expect(label).not.toMatch(/^(xen-cr:|Async\.VM\.snapshot|Async\.VDI\.clone)/)
    expect(after.target).toContain('backup of something else')
  }, 120_000)

  it('reads tasks and unattached disks only when the previous pass of the VM did not leave it tidy', async () => {
    const sweepReads = (): number[] =>
      (['src', 'tgt'] as const).map(
        pool => f.lab.control.transferStats(pool).xapi.byMethod['task.get_all_records']?.calls ?? 0,
      )
    await pass()
    f.lab.control.resetTransferStats()
    await pass()
    // the pass before succeeded with no call failed: nothing to look for beyond the records
    expect(sweepReads()).toEqual([0, 0])

    await failedPass()
    f.lab.control.resetTransferStats()
    await pass()
    expect(sweepReads()).toEqual([1, 1])
  }, 120_000)
})
