import { afterEach, describe, expect, it } from 'vitest'
import { IMPORTING_BLOCKED_MESSAGE, KEYS, PLACEHOLDER_DATETIME, REPLICA_TAG } from '../../src/replication/metadata.js'
import { listVmDisks } from '../../src/xapi/vbd.js'
import { blockOperation, cloneVm, setVmOtherConfig, unblockOperation } from '../../src/xapi/vm.js'
import type { Ref } from '../../src/xapi/types.js'
import {
  DR_NETWORK,
  HOUR,
  NETWORK,
  configWithSourceDown,
  counts,
  diskHashes,
  eventOf,
  events,
  pass,
  plainVms,
  replicaState,
  replicasOf,
  startRecoveryFixture,
  type RecoveryFixture,
} from './recovery-fixture.js'

let f: RecoveryFixture | undefined
afterEach(async () => {
  await f?.close()
  f = undefined
})

interface SuccessResult {
  status: 'success'
  vm: { uuid: string; name: string }
  replica: { uuid: string; datetime: string; ageMs: number }
  failoverVm: { uuid: string; name: string }
  via: 'clone' | 'copy'
  started: boolean
  vifs: number
}
interface Done {
  results: ({
    status: string
    vm: { name: string }
    error?: { code: string; message: string }
  } & Partial<SuccessResult>)[]
}
interface PlanEvent {
  plan: {
    entries: {
      status: string
      vm: { name: string }
      code?: string
      replica?: { uuid: string; datetime: string; ageMs: number }
    }[]
  }
}

const t0 = new Date(Date.UTC(2026, 7, 21, 12, 0, 0))
const t1 = new Date(t0.getTime() + HOUR)

/** Two passes: a full at t0, then (after the guests wrote a block) a delta at t1. */
async function twoPasses(fx: RecoveryFixture): Promise<void> {
  await pass(fx, t0, 'full')
  await fx.lab.control.writeGuestData('src', fx.vmUuid, { blocks: [1], seed: 3 })
  await fx.lab.control.writeGuestData('src', fx.dbUuid, { blocks: [0], seed: 4 })
  await pass(fx, t1, 'delta')
}

/** The VM is an ordinary VM: no replica tag, no replication key on it or its disks, start not blocked. */
async function expectOrdinary(fx: RecoveryFixture, ref: Ref<'VM'>): Promise<void> {
  const vm = await fx.target.getRecord('VM', ref)
  expect(vm.tags).not.toContain(REPLICA_TAG)
  expect(vm.blocked_operations).toEqual({})
  expect(Object.keys(vm.other_config).filter(k => k.startsWith('xo:'))).toEqual([])
  for (const disk of await listVmDisks(fx.target, vm.VBDs))
    expect(Object.keys(disk.vdi.other_config).filter(k => k.startsWith('xo:'))).toEqual([])
}

describe('xen-cr failover', () => {
  it('brings a two-VM job up from its newest replicas, leaves the replicas as they were, and the next pass is still a delta', async () => {
    f = await startRecoveryFixture()
    await twoPasses(f)
    const replicas = [...(await replicasOf(f, f.vmUuid)), ...(await replicasOf(f, f.dbUuid))]
    expect(replicas).toHaveLength(4)
    const before = await Promise.all(replicas.map(([ref]) => replicaState(f!.target, ref)))
    const newest = new Map([
      ['web', (await replicasOf(f, f.vmUuid))[1]!],
      ['db', (await replicasOf(f, f.dbUuid))[1]!],
    ])
    const later = new Date(t1.getTime() + 5 * 60_000)

    // A dry run names the newest replica of each VM with its age, and creates nothing.
    const beforeDry = await counts(f.target)
    const dry = await f.cli(['--json', 'failover', 'nightly', '--dry-run'], { now: later })
    expect(dry.err).toBe('')
    expect(dry.code).toBe(0)
    const plan = eventOf<PlanEvent>(dry.out, 'failover-plan').plan
    expect(plan.entries.map(e => [e.vm.name, e.status, e.replica?.uuid, e.replica?.ageMs])).toEqual([
      ['db', 'ready', newest.get('db')![1].uuid, 5 * 60_000],
      ['web', 'ready', newest.get('web')![1].uuid, 5 * 60_000],
    ])
    expect(await counts(f.target)).toEqual(beforeDry)
    const human = await f.cli(['failover', 'nightly', '--dry-run'], { now: later })
    expect(human.out).toMatch(
      /web \(.+\): would clone the replica of 20260821T13:00:00Z \(5m old\) on SR Replica A into "web \(failover\)"/,
    )

    const done = await f.cli(['--json', 'failover', 'nightly'], { now: later })
    expect(done.err).toBe('')
    expect(done.code).toBe(0)
    const results = eventOf<Done>(done.out, 'failover-done').results
    expect(results.map(r => [r.vm.name, r.status, r.failoverVm?.name, r.via, r.started, r.vifs])).toEqual([
      ['db', 'success', 'db (failover)', 'clone', true, 1],
      ['web', 'success', 'web (failover)', 'clone', true, 1],
    ])
    for (const result of results) {
      const replica = newest.get(result.vm.name)!
      expect(result.replica).toMatchObject({ uuid: replica[1].uuid, datetime: '20260821T13:00:00Z', ageMs: 300_000 })
      const ref = await f.target.getByUuid('VM', result.failoverVm!.uuid)
      expect((await f.target.getRecord('VM', ref)).power_state).toBe('Running')
      await expectOrdinary(f, ref)
      // The new VM's disks hold exactly the replica's data.
      expect(await diskHashes(f.target, ref)).toEqual(await diskHashes(f.target, replica[0]))
    }

    // The replicas: untouched, still protected.
    expect(await Promise.all(replicas.map(([ref]) => replicaState(f!.target, ref)))).toEqual(before)

    // The job goes on: a delta from the same base, and retention never touches the failover VMs.
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [2], seed: 6 })
    await pass(f, new Date(t1.getTime() + HOUR), 'delta')
    await pass(f, new Date(t1.getTime() + 2 * HOUR), 'delta')
    expect(await replicasOf(f, f.vmUuid)).toHaveLength(2)
    const names = [...(await plainVms(f.target)).values()].map(v => `${v.name_label} ${v.power_state}`)
    expect(names).toContain('web (failover) Running')
    expect(names).toContain('db (failover) Running')
    const listed = await f.cli(['--json', 'list', 'nightly'])
    expect(JSON.stringify(events(listed.out))).not.toContain('(failover)')
  })

  it('with --at takes the newest replica at or before that time; a time before every replica is refused and creates nothing', async () => {
    f = await startRecoveryFixture()
    await twoPasses(f)
    const [older] = await replicasOf(f, f.vmUuid)
    const at = await f.cli(
      ['--json', 'failover', 'nightly', '--vm', 'web', '--at', '2026-08-21T12:30:00Z', '--no-start'],
      { now: t1 },
    )
    expect(at.err).toBe('')
    expect(at.code).toBe(0)
    const [result] = eventOf<Done>(at.out, 'failover-done').results
    expect(result).toMatchObject({
      status: 'success',
      started: false,
      replica: { uuid: older![1].uuid, datetime: '20260821T12:00:00Z' },
    })
    const ref = await f.target.getByUuid('VM', result!.failoverVm!.uuid)
    expect((await f.target.getRecord('VM', ref)).power_state).toBe('Halted')
    expect(await diskHashes(f.target, ref)).toEqual(await diskHashes(f.target, older![0]))

    // The XAPI form works as well, and an instant before every replica is one refusal line, exit 5.
    const before = await counts(f.target)
    const early = await f.cli(['failover', 'nightly', '--vm', f.dbUuid, '--at', '20260821T11:59:59Z'], { now: t1 })
    expect(early.code).toBe(5)
    expect(early.err.trim().split('\n')).toHaveLength(1)
    expect(early.err).toMatch(
      /FAILED db: refused: VM db \(.+\) has no complete replica at or before 2026-08-21T11:59:59.000Z; its oldest is 20260821T12:00:00Z \[NO_REPLICA_AT\]/,
    )
    expect(await counts(f.target)).toEqual(before)

    const bad = await f.cli(['failover', 'nightly', '--at', 'yesterday'])
    expect(bad.code).toBe(2)
    expect(bad.err).toMatch(/\[BAD_DATETIME\]/)
  })

  it('works with the source pool unreachable: only the target pool is contacted', async () => {
    f = await startRecoveryFixture()
    await twoPasses(f)
    const down = await configWithSourceDown(f)
    // the same config really cannot reach the source: a pass fails to log in (exit 4)
    const runDown = await f.cli(['run', 'nightly'], { config: down })
    expect(runDown.code).toBe(4)

    const listed = await f.cli(['--json', 'replicas', 'nightly'], { config: down })
    expect(listed.code).toBe(0)
    const done = await f.cli(['--json', 'failover', 'nightly'], { config: down })
    expect(done.err).toBe('')
    expect(done.code).toBe(0)
    const results = eventOf<Done>(done.out, 'failover-done').results
    expect(results.map(r => [r.vm.name, r.status, r.started])).toEqual([
      ['db', 'success', true],
      ['web', 'success', true],
    ])
  })

  it('refuses, one line each and creating nothing: no replica, only an interrupted one, a started replica, a second failover', async () => {
    f = await startRecoveryFixture()
    await pass(f, t0, 'full', [f.vmUuid])
    const before = await counts(f.target)

    // db was never replicated; without the source pool its name is unknown, so it goes by uuid
    const none = await f.cli(['failover', 'nightly', '--vm', f.dbUuid])
    expect(none.code).toBe(5)
    expect(none.err.trim().split('\n')).toHaveLength(1)
    expect(none.err).toContain(
      `FAILED ${f.dbUuid}: refused: VM ${f.dbUuid} has no replica of job nightly on the target pool [NO_REPLICA]`,
    )
    expect(await counts(f.target)).toEqual(before)

    // what a pass that died mid-import leaves for db: a replica with the placeholder datetime
    const [webReplica] = await replicasOf(f, f.vmUuid)
    const debris = await cloneVm(f.target, webReplica![0], '[Importing…] db - nightly - (20260821T120000Z)')
    await setVmOtherConfig(f.target, debris, { [KEYS.vm]: f.dbUuid, [KEYS.datetime]: PLACEHOLDER_DATETIME })
    await blockOperation(f.target, debris, 'start', IMPORTING_BLOCKED_MESSAGE)
    const withDebris = await counts(f.target)
    const interrupted = await f.cli(['failover', 'nightly', '--vm', f.dbUuid])
    expect(interrupted.code).toBe(5)
    expect(interrupted.err).toMatch(
      /FAILED db: refused: VM db \(.+\) has no complete replica of job nightly: 1 interrupted one\(s\) only \[NO_COMPLETE_REPLICA\]/,
    )
    expect(await counts(f.target)).toEqual(withDebris)

    // the whole job: web comes up, db is refused, and that is exit 1 (something was done, not all)
    const whole = await f.cli(['--json', 'failover', 'nightly', '--no-start'])
    expect(whole.code).toBe(1)
    expect(eventOf<Done>(whole.out, 'failover-done').results.map(r => [r.vm.name, r.status, r.error?.code])).toEqual([
      ['db', 'refused', 'NO_COMPLETE_REPLICA'],
      ['web', 'success', undefined],
    ])
    const afterWhole = await counts(f.target)

    // twice is refused: two VMs with the same MACs must not both run
    const twice = await f.cli(['failover', 'nightly', '--vm', 'web'])
    expect(twice.code).toBe(5)
    expect(twice.err).toMatch(/a VM named "web \(failover\)" already exists .*\[FAILOVER_VM_EXISTS\]/)
    expect(await counts(f.target)).toEqual(afterWhole)

    // someone booted the replica by hand: its disks are no longer the copy of its datetime
    await unblockOperation(f.target, webReplica![0], 'start')
    const started = await f.cli(['failover', 'nightly', '--vm', 'web', '--name-suffix', ' (2)'])
    expect(started.code).toBe(5)
    expect(started.err).toMatch(/was started or its start unblocked.*\[REPLICA_STARTED\]/)
    expect(await counts(f.target)).toEqual(afterWhole)
  })

  it('removes the half-made VM when its start fails, falls back to a copy when the SR cannot clone, and maps or drops networks', async () => {
    f = await startRecoveryFixture()
    await pass(f, t0, 'full')
    const before = await counts(f.target)

    f.lab.control.injectFault('tgt', {
      kind: 'error',
      method: 'VM.start',
      code: 'HOST_NOT_ENOUGH_FREE_MEMORY',
      params: ['1', '0'],
      nth: 1,
    })
    const failed = await f.cli(['failover', 'nightly', '--vm', 'web'])
    expect(failed.code).toBe(1)
    expect(failed.err).toMatch(
      /FAILED web: failover from the replica .* failed: .*HOST_NOT_ENOUGH_FREE_MEMORY.*the half-made VM was removed/,
    )
    expect(await counts(f.target)).toEqual(before)

    f.lab.control.injectFault('tgt', {
      kind: 'error',
      method: 'VM.clone',
      code: 'SR_OPERATION_NOT_SUPPORTED',
      params: [],
      nth: 1,
    })
    const mapped = await f.cli([
      '--json',
      'failover',
      'nightly',
      '--vm',
      'web',
      '--network-map',
      `${NETWORK}=${DR_NETWORK}`,
    ])
    expect(mapped.code).toBe(0)
    expect(events(mapped.out).some(e => e.kind === 'warning' && e['code'] === 'CLONE_NOT_SUPPORTED')).toBe(true)
    const [copied] = eventOf<Done>(mapped.out, 'failover-done').results
    expect(copied).toMatchObject({ status: 'success', via: 'copy', vifs: 1 })
    const copiedRef = await f.target.getByUuid('VM', copied!.failoverVm!.uuid)
    const vif = await f.target.getRecord('VIF', (await f.target.getRecord('VM', copiedRef)).VIFs[0]!)
    expect((await f.target.getRecord('network', vif.network)).name_label).toBe(DR_NETWORK)
    await expectOrdinary(f, copiedRef)
    expect(await diskHashes(f.target, copiedRef)).toEqual(
      await diskHashes(f.target, (await replicasOf(f, f.vmUuid))[0]![0]),
    )

    const bare = await f.cli(['--json', 'failover', 'nightly', '--vm', 'db', '--no-network'])
    expect(bare.code).toBe(0)
    const [dbResult] = eventOf<Done>(bare.out, 'failover-done').results
    expect(dbResult).toMatchObject({ status: 'success', vifs: 0 })
    expect((await f.target.getRecord('VM', await f.target.getByUuid('VM', dbResult!.failoverVm!.uuid))).VIFs).toEqual(
      [],
    )

    const mid = await counts(f.target)
    const unknownNetwork = await f.cli([
      'failover',
      'nightly',
      '--vm',
      'db',
      '--name-suffix',
      ' (3)',
      '--network-map',
      `${NETWORK}=nowhere`,
    ])
    expect(unknownNetwork.code).toBe(5)
    expect(unknownNetwork.err).toMatch(/no network nowhere on the target pool \[NETWORK_NOT_FOUND\]/)
    const both = await f.cli(['failover', 'nightly', '--no-network', '--network-map', `${NETWORK}=${DR_NETWORK}`])
    expect(both.code).toBe(2)
    expect(await counts(f.target)).toEqual(mid)
  })
})
