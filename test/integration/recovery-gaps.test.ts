/**
 * Failover and health check against a full target SR, HA settings carried from the source VM to
 * the failover VM, and a whole-job failover in the source's start order.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { SOURCE_SETTING_KEYS } from '../../src/replication/metadata.js'
import type { XapiClient } from '../../src/xapi/client.js'
import type { Ref, VmRecord } from '../../src/xapi/types.js'
import {
  HOUR,
  counts,
  eventOf,
  events,
  pass,
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

const t0 = new Date(Date.UTC(2026, 7, 21, 12, 0, 0))
const t1 = new Date(t0.getTime() + HOUR)

interface Done {
  results: {
    status: string
    vm: { name: string }
    error?: { code: string; message: string }
    failoverVm?: { uuid: string; name: string }
  }[]
}

async function srNamed(client: XapiClient, name: string): Promise<Ref<'SR'>> {
  const found = [...(await client.getAllRecords('SR'))].find(([, sr]) => sr.name_label === name)
  expect(found, `SR ${name}`).toBeDefined()
  return found![0]
}

/** Shrinks the SR to what its disks hold now: not one more block fits. */
async function fillUp(client: XapiClient, sr: Ref<'SR'>): Promise<void> {
  await client.call('SR.scan', [sr])
  const record = await client.getRecord('SR', sr)
  await client.call('SR.set_physical_size', [sr, record.physical_utilisation])
}

/** The VM of the source pool called `name`. */
async function sourceVm(fx: RecoveryFixture, name: string): Promise<Ref<'VM'>> {
  const found = [...(await fx.source.getAllRecords('VM'))].find(([, v]) => v.name_label === name && !v.is_a_snapshot)
  return found![0]
}

describe('recovery onto a full SR', () => {
  it('failover whose copy does not fit fails with one line naming the SR and leaves nothing behind', async () => {
    f = await startRecoveryFixture()
    await pass(f, t0, 'full')
    const sr = await srNamed(f.target, 'Replica A')
    await fillUp(f.target, sr)
    const [replica] = (await replicasOf(f, f.vmUuid)).map(([ref]) => ref)
    const replicaBefore = await replicaState(f.target, replica!)
    const before = await counts(f.target)
    // an SR that cannot clone: failover copies the replica's disks in full, which needs space
    f.lab.control.injectFault('tgt', {
      kind: 'error',
      method: 'VM.clone',
      code: 'SR_OPERATION_NOT_SUPPORTED',
      params: [],
      nth: 1,
    })

    const failed = await f.cli(['failover', 'nightly', '--vm', 'web'])

    expect(failed.code).toBe(1)
    const lines = failed.err.trim().split('\n')
    const line = lines.find(l => l.includes('SR "Replica A" is full'))
    expect(line, failed.err).toMatch(
      /web: failover from the replica .* failed: SR "Replica A" is full \(VM\.copy would take it to .* of its .*\); free at least \d+(\.\d+)? MiB on it .*and run failover again.* \[XAPI_SR_FULL\]/,
    )
    expect(await counts(f.target)).toEqual(before)
    expect(await replicaState(f.target, replica!)).toEqual(replicaBefore)
  })

  it('health check copying onto a full --sr fails with one line naming the SR and leaves no clone', async () => {
    f = await startRecoveryFixture()
    await pass(f, t0, 'full')
    const sr = await srNamed(f.target, 'Replica A')
    await fillUp(f.target, sr)
    const before = await counts(f.target)
    f.lab.control.injectFault('tgt', {
      kind: 'error',
      method: 'VM.clone',
      code: 'SR_OPERATION_NOT_SUPPORTED',
      params: [],
      nth: 1,
    })

    const failed = await f.cli([
      '--json',
      'health-check',
      'nightly',
      '--vm',
      'web',
      '--sr',
      (await f.target.getRecord('SR', sr)).uuid,
    ])

    expect(failed.code).toBe(1)
    const [result] = eventOf<Done>(failed.out, 'health-check-done').results
    expect(result?.status).toBe('failed')
    expect(result?.error?.code).toBe('XAPI_SR_FULL')
    expect(result?.error?.message).toMatch(
      /^SR "Replica A" is full \(.*\); free at least .* on it, or choose another SR with --sr$/,
    )
    expect(result?.error?.message).not.toContain('\n')
    expect(await counts(f.target)).toEqual(before)
  })

  it('a pass whose import does not fit fails the VM and keeps the previous replica', async () => {
    f = await startRecoveryFixture()
    await pass(f, t0, 'full')
    const [replica] = (await replicasOf(f, f.vmUuid)).map(([ref]) => ref)
    const replicaBefore = await replicaState(f.target, replica!)
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [1, 2], seed: 9 })
    const sr = await srNamed(f.target, 'Replica A')
    await fillUp(f.target, sr)
    const before = await counts(f.target)

    const result = await f.cli(['--json', 'run', 'nightly', '--vm', f.vmUuid], { now: t1 })

    expect(result.code).toBe(1)
    const done = events(result.out).filter(e => e.kind === 'vm-done') as unknown as {
      result: { status: string; error?: { code: string; message: string } }
    }[]
    expect(done).toHaveLength(1)
    expect(done[0]!.result.status).toBe('failed')
    expect(`${done[0]!.result.error?.code} ${done[0]!.result.error?.message}`).toContain('SR_FULL')
    expect(await counts(f.target)).toEqual(before)
    expect((await replicasOf(f, f.vmUuid)).map(([ref]) => ref)).toEqual([replica])
    expect(await replicaState(f.target, replica!)).toEqual(replicaBefore)
  })
})

describe('failover restores what the source had', () => {
  it('HA restart priority: cleared on the replica, recorded under its own key, back on the failover VM', async () => {
    f = await startRecoveryFixture()
    await f.source.call('VM.set_ha_restart_priority', [await sourceVm(f, 'web'), 'restart'])
    await pass(f, t0, 'full')
    const [[, webReplica]] = (await replicasOf(f, f.vmUuid)) as [[Ref<'VM'>, VmRecord]]
    const [[, dbReplica]] = (await replicasOf(f, f.dbUuid)) as [[Ref<'VM'>, VmRecord]]
    expect(webReplica.ha_restart_priority).toBe('')
    expect(webReplica.other_config[SOURCE_SETTING_KEYS.haRestartPriority]).toBe('restart')
    expect(dbReplica.ha_restart_priority).toBe('')
    expect(dbReplica.other_config[SOURCE_SETTING_KEYS.haRestartPriority]).toBeUndefined()

    const result = await f.cli(['--json', 'failover', 'nightly', '--no-start'])

    expect(result.code).toBe(0)
    const made = new Map<string, VmRecord>()
    for (const r of eventOf<Done>(result.out, 'failover-done').results)
      made.set(r.vm.name, await f.target.getRecord('VM', await f.target.getByUuid('VM', r.failoverVm!.uuid)))
    expect(made.get('web')?.ha_restart_priority).toBe('restart')
    expect(made.get('db')?.ha_restart_priority).toBe('')
    for (const vm of made.values())
      expect(Object.keys(vm.other_config).filter(k => Object.values<string>(SOURCE_SETTING_KEYS).includes(k))).toEqual(
        [],
      )
    // the replicas themselves are untouched: HA still off
    for (const [, replica] of [...(await replicasOf(f, f.vmUuid)), ...(await replicasOf(f, f.dbUuid))])
      expect(replica.ha_restart_priority).toBe('')
  })

  it('start order: a whole-job failover starts the VMs in ascending order groups, the next group after the delay', async () => {
    f = await startRecoveryFixture()
    // db first (order 0, then 1 s before the next group), web second: the reverse of the job's VM list
    const [web, db] = [await sourceVm(f, 'web'), await sourceVm(f, 'db')]
    await f.source.call('VM.set_order', [db, 0])
    await f.source.call('VM.set_start_delay', [db, 1])
    await f.source.call('VM.set_order', [web, 1])
    await pass(f, t0, 'full')
    const [[, webReplica]] = (await replicasOf(f, f.vmUuid)) as [[Ref<'VM'>, VmRecord]]
    const [[, dbReplica]] = (await replicasOf(f, f.dbUuid)) as [[Ref<'VM'>, VmRecord]]
    expect([webReplica.order, webReplica.start_delay]).toEqual([1, 0])
    expect([dbReplica.order, dbReplica.start_delay]).toEqual([0, 1])

    // watch the target's VM records while the failover runs: the order their changes arrive in
    const poolRef = [...(await f.target.getAllRecords('pool')).keys()][0]!
    let token = await f.target.call<string>('event.inject', ['pool', poolRef])
    const seen: { name: string; operation: string; power: string }[] = []
    let finished = false
    const watch = (async () => {
      while (!finished) {
        const batch = await f.target.call<{
          token: string
          events: { class: string; operation: string; snapshot?: { name_label: string; power_state: string } }[]
        }>('event.from', [['vm'], token, 1])
        token = batch.token
        for (const e of batch.events)
          if (e.class === 'vm' && e.snapshot !== undefined)
            seen.push({ name: e.snapshot.name_label, operation: e.operation, power: e.snapshot.power_state })
      }
    })()
    const result = await f.cli(['--json', 'failover', 'nightly'])
    finished = true
    await watch

    expect(result.code).toBe(0)
    const names = new Map(eventOf<Done>(result.out, 'failover-done').results.map(r => [r.vm.name, r.failoverVm!.name]))
    const firstIndex = (name: string, match: (e: (typeof seen)[number]) => boolean): number =>
      seen.findIndex(e => e.name === name && match(e))
    const dbRunning = firstIndex(names.get('db')!, e => e.power === 'Running')
    const webMade = firstIndex(names.get('web')!, e => e.operation === 'add')
    const webRunning = firstIndex(names.get('web')!, e => e.power === 'Running')
    expect(dbRunning, JSON.stringify(seen)).toBeGreaterThanOrEqual(0)
    // the second group was not even cloned before the first group's VM was running
    expect(webMade).toBeGreaterThan(dbRunning)
    expect(webRunning).toBeGreaterThan(webMade)
    const waits = events(result.out).filter(e => e.kind === 'failover-wait')
    expect(waits).toEqual([expect.objectContaining({ afterOrder: 0, delayMs: 1000 })])
    const order = events(result.out)
      .filter(e => e.kind === 'failover-vm-done' || e.kind === 'failover-wait')
      .map(e =>
        e.kind === 'failover-wait' ? 'wait' : (e as unknown as { result: { vm: { name: string } } }).result.vm.name,
      )
    expect(order).toEqual(['db', 'wait', 'web'])
  })
})
