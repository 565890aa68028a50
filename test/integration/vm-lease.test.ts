/**
 * The per-VM lease in XAPI (`src/replication/vm-lease.ts`) against the lab: XAPI's
 * create-if-absent (`add_to_other_config` refuses an existing key), taking, renewing and
 * releasing, a lease held elsewhere, and takeovers of an expired lease — one at a time and many
 * at once, where a single-key "remove what I read, then add" scheme lets two contenders win.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { hostname } from 'node:os'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { isXapiError } from '../../src/errors.js'
import type { Lab } from '../../src/lab/start.js'
import { leaseKeyPrefix } from '../../src/replication/metadata.js'
import {
  acquireVmLease,
  currentProcessTable,
  leaseTiming,
  type AcquireOutcome,
  type LeaseContext,
  type LeaseOwner,
} from '../../src/replication/vm-lease.js'
import type { XapiClient } from '../../src/xapi/client.js'
import type { Ref } from '../../src/xapi/types.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'
import { OTHER_CONTROLLER, holdVmLease, vmLeaseEntries } from '../helpers/vm-lease.js'

const SPEC = {
  pools: [{ name: 'src', srs: [{ name: 'Local storage' }], vms: [{ name: 'web', disks: [] }] }],
}

let lab: Lab
let client: XapiClient
let vmRef: Ref<'VM'>
let vmUuid: string
let jobId: string
let jobCounter = 0

beforeAll(async () => {
  lab = await startTempLab(SPEC)
  client = await connectLabPool(labPool(lab, 'src'))
  const vms = await client.getAllRecords('VM')
  const entry = [...vms].find(([, vm]) => vm.name_label === 'web')!
  vmRef = entry[0]
  vmUuid = entry[1].uuid
}, 60_000)
afterAll(async () => {
  await client?.close()
  await lab?.stop()
})
beforeEach(() => {
  // a job of its own per test: no entry of another test is in the way
  jobId = `job-${++jobCounter}`
})

function owner(name: string): LeaseOwner {
  return { host: `host-${name}`, pid: 1000 + name.length, run: `run-${name}` }
}

function context(who: LeaseOwner, ttlMs = 60_000): LeaseContext {
  return { client, vmRef, jobId, owner: who, timing: leaseTiming(ttlMs) }
}

/** A child process of this test that runs until killed. */
async function liveChild(): Promise<ChildProcess & { pid: number }> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
  await once(child, 'spawn')
  return child as ChildProcess & { pid: number }
}

/** The pid of a process of this host that was killed with -9 (and reaped): no process has it now. */
async function deadPid(): Promise<number> {
  const child = await liveChild()
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
  return child.pid
}

/**
 * Runs `action` with `method` failing once on the source pool (HANDLE_INVALID, on its `nth`
 * call), and returns what it threw (undefined when it did not throw).
 */
async function failingOnce(method: string, nth: number, action: () => Promise<unknown>): Promise<unknown> {
  lab.control.injectFault('src', {
    kind: 'error',
    method,
    code: 'HANDLE_INVALID',
    params: ['VM', 'OpaqueRef:gone'],
    nth,
  })
  try {
    return await action().then(
      () => undefined,
      (e: unknown) => e,
    )
  } finally {
    lab.control.clearFaults('src')
  }
}

function acquired(outcome: AcquireOutcome) {
  if (!outcome.acquired) throw new Error(`expected the lease, it is held by ${outcome.holder.run}`)
  return outcome
}

describe('the lab, as XAPI', () => {
  it('refuses add_to_other_config of an existing key with MAP_DUPLICATE_KEY and keeps the first value', async () => {
    const key = `${leaseKeyPrefix(jobId)}0`
    await client.call('VM.add_to_other_config', [vmRef, key, 'first'])
    const error = await client.call('VM.add_to_other_config', [vmRef, key, 'second']).catch((e: unknown) => e)
    expect(isXapiError(error, 'MAP_DUPLICATE_KEY')).toBe(true)
    expect((await client.call<Record<string, string>>('VM.get_other_config', [vmRef]))[key]).toBe('first')
    await client.call('VM.remove_from_other_config', [vmRef, key])
  })
})

describe('a VM lease', () => {
  it('is taken, renewed, and released as a tombstone that records the last replication', async () => {
    const a = acquired(await acquireVmLease(context(owner('a'))))
    expect(a.previous).toBeUndefined()
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).keys()]).toEqual([`${leaseKeyPrefix(jobId)}0`])
    const before = a.lease.expiresAt
    expect(await a.lease.renew()).toBe(true)
    expect(a.lease.expiresAt).toBeGreaterThanOrEqual(before)
    const renewed = await vmLeaseEntries(client, vmRef, jobId)
    expect([...renewed.keys()]).toEqual([`${leaseKeyPrefix(jobId)}1`])
    expect(renewed.get(`${leaseKeyPrefix(jobId)}1`)).toMatchObject({ host: 'host-a', run: 'run-a' })

    const last = { schedule: 's', at: '2026-12-01T00:00:00.000Z', host: 'host-a', run: 'run-a' }
    await a.lease.release(last)
    const released = await vmLeaseEntries(client, vmRef, jobId)
    expect([...released.keys()]).toEqual([`${leaseKeyPrefix(jobId)}2`])
    expect(released.get(`${leaseKeyPrefix(jobId)}2`)).toMatchObject({ released: true, last })

    // the next holder takes it at once, sees the last replication, and carries it on
    const b = acquired(await acquireVmLease(context(owner('b'))))
    expect(b.previous).toMatchObject({ released: true, last })
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).keys()]).toEqual([`${leaseKeyPrefix(jobId)}3`])
    await b.lease.release()
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).values()]).toMatchObject([{ released: true, last }])
  })

  it('taken, but whose clearing of the entries below fails, is given back, not left live', async () => {
    const a = acquired(await acquireVmLease(context(owner('a'))))
    await a.lease.release()
    const failed = await failingOnce('VM.remove_from_other_config', 1, () => acquireVmLease(context(owner('b'))))
    expect(isXapiError(failed, 'HANDLE_INVALID')).toBe(true)
    const entries = [...(await vmLeaseEntries(client, vmRef, jobId)).values()]
    expect(entries.at(-1)).toMatchObject({ run: 'run-b', released: true })
    // the VM is free for the next run at once
    const c = acquired(await acquireVmLease(context(owner('c'))))
    await c.lease.release()
  })

  it('claimed, but whose read back fails, is given back, not left live', async () => {
    // Without the fix the entry added before the failed read stayed live, blocking the VM for
    // every run until it expired (fault matrix: src VM.get_other_config HANDLE_INVALID).
    const view = await client.call<Record<string, string>>('VM.get_other_config', [vmRef])
    const failed = await failingOnce('VM.get_other_config', 1, () => acquireVmLease(context(owner('a')), view))
    expect(isXapiError(failed, 'HANDLE_INVALID')).toBe(true)
    const entries = [...(await vmLeaseEntries(client, vmRef, jobId)).values()]
    expect(entries).toMatchObject([{ run: 'run-a', released: true }])
    const b = acquired(await acquireVmLease(context(owner('b'))))
    await b.lease.release()
  })

  it('renewed, but whose superseded entry could not be removed, is still held and renews and releases', async () => {
    const a = acquired(await acquireVmLease(context(owner('a'))))
    const failed = await failingOnce('VM.remove_from_other_config', 1, () => a.lease.renew())
    expect(isXapiError(failed, 'HANDLE_INVALID')).toBe(true)
    expect(await a.lease.renew()).toBe(true)
    expect(a.lease.lost).toBe(false)
    await a.lease.release()
    const entries = [...(await vmLeaseEntries(client, vmRef, jobId)).values()]
    expect(entries.at(-1)).toMatchObject({ run: 'run-a', released: true })
  })

  it('renewed, but whose read back fails after its new entry went in, is still held and renews and releases', async () => {
    // Without the fix the next renewal found the failed renewal's own entry on top and declared
    // the lease lost, stopping the VM's pass for nothing.
    const a = acquired(await acquireVmLease(context(owner('a'))))
    // the renewal reads the entries, adds the next one, then reads back: the read back fails
    const failed = await failingOnce('VM.get_other_config', 2, () => a.lease.renew())
    expect(isXapiError(failed, 'HANDLE_INVALID')).toBe(true)
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).keys()]).toEqual([
      `${leaseKeyPrefix(jobId)}0`,
      `${leaseKeyPrefix(jobId)}1`,
    ])
    expect(await a.lease.renew()).toBe(true)
    expect(a.lease.lost).toBe(false)
    // nobody else takes it, and the entries below the holder's are gone
    expect((await acquireVmLease(context(owner('b')))).acquired).toBe(false)
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).keys()]).toEqual([`${leaseKeyPrefix(jobId)}2`])
    await a.lease.release()
    const entries = [...(await vmLeaseEntries(client, vmRef, jobId)).values()]
    expect(entries).toMatchObject([{ run: 'run-a', released: true }])
    await acquired(await acquireVmLease(context(owner('b')))).lease.release()
  })

  it('whose renewal failed after its new entry went in is released at once, not left live until it expires', async () => {
    const a = acquired(await acquireVmLease(context(owner('a'))))
    await failingOnce('VM.get_other_config', 2, () => a.lease.renew())
    await a.lease.release()
    const entries = [...(await vmLeaseEntries(client, vmRef, jobId)).values()]
    expect(entries.at(-1)).toMatchObject({ run: 'run-a', released: true })
    const b = acquired(await acquireVmLease(context(owner('b'))))
    await b.lease.release()
  })

  it('is not taken while another controller holds it, and says who and until when', async () => {
    const held = await holdVmLease(client, vmUuid, jobId)
    const outcome = await acquireVmLease(context(owner('a')))
    expect(outcome).toEqual({ acquired: false, holder: held })
    expect(outcome.acquired === false && outcome.holder.host).toBe(OTHER_CONTROLLER.host)
    // nothing of ours was left behind
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).values()]).toEqual([held])
  })

  it('says on its tombstone whether the VM was left tidy: carried by a holder that did nothing, never by a takeover', async () => {
    const a = acquired(await acquireVmLease(context(owner('a'))))
    await a.lease.release(undefined, true)
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).values()]).toMatchObject([{ released: true, tidy: true }])
    // a holder that did no work carries it; one that worked says what it left
    const b = acquired(await acquireVmLease(context(owner('b'))))
    expect(b.previous).toMatchObject({ released: true, tidy: true })
    await b.lease.release()
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).values()]).toMatchObject([{ run: 'run-b', tidy: true }])
    const c = acquired(await acquireVmLease(context(owner('c'), 1_000)))
    await c.lease.release(undefined, false)
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).values()][0]?.tidy).toBeUndefined()

    // a holder that was tidy when it took the lease, then died holding it: its takeover is not tidy
    const d = acquired(await acquireVmLease(context(owner('d'), 1_000)))
    expect(d.previous?.tidy).toBeUndefined()
    await d.lease.release(undefined, true)
    const e = acquired(await acquireVmLease(context(owner('e'), 1_000)))
    expect(e.lease.record.tidy).toBe(true)
    const later = { ...context(owner('f')), clock: () => Date.now() + 2_000 }
    const f = acquired(await acquireVmLease(later))
    expect(f.takeover).toBe('expired')
    expect(f.previous).toMatchObject({ run: 'run-e', tidy: true })
    expect(f.lease.record.tidy).toBeUndefined()
    await f.lease.release()
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).values()][0]?.tidy).toBeUndefined()
  })

  it('is taken over once expired, and the stalled former holder finds it lost on renewal and release', async () => {
    const stalled = acquired(await acquireVmLease(context(owner('stalled'), 1_000)))
    // the holder stalls (no renewal) past its lease time; a clock 2 s ahead sees it expired
    const later = { ...context(owner('b')), clock: () => Date.now() + 2_000 }
    const b = acquired(await acquireVmLease(later))
    expect(b.previous).toMatchObject({ run: 'run-stalled' })
    expect(await stalled.lease.renew()).toBe(false)
    expect(stalled.lease.lost).toBe(true)
    await stalled.lease.release()
    const entries = [...(await vmLeaseEntries(client, vmRef, jobId)).values()]
    expect(entries).toHaveLength(1)
    expect(entries[0]).toMatchObject({ run: 'run-b' })
    expect(entries[0]?.released).toBeUndefined()
    await b.lease.release()
  })

  it('of a controller killed while holding it (entry left, never renewed) is taken over after it expires', async () => {
    await holdVmLease(client, vmUuid, jobId, { ttlMs: -1, n: 7 })
    const a = acquired(await acquireVmLease(context(owner('a'))))
    expect(a.previous).toMatchObject({ ...OTHER_CONTROLLER })
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).keys()]).toEqual([`${leaseKeyPrefix(jobId)}8`])
    await a.lease.release()
  })

  it('whose entry is not a lease value (edited by hand) is taken, never left blocking the VM', async () => {
    await client.call('VM.add_to_other_config', [vmRef, `${leaseKeyPrefix(jobId)}3`, 'edited by hand'])
    const a = acquired(await acquireVmLease(context(owner('a'))))
    expect(a.previous).toBeUndefined()
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).keys()]).toEqual([`${leaseKeyPrefix(jobId)}4`])
    await a.lease.release()
  })

  it('taken over by many controllers at once goes to exactly one, 20 times over', async () => {
    for (let round = 0; round < 20; round++) {
      // an expired lease of a killed controller, then eight takeovers racing for it
      jobId = `race-${round}`
      await holdVmLease(client, vmUuid, jobId, { ttlMs: -1, n: round })
      const contenders = Array.from({ length: 8 }, (_, i) => owner(`c${i}`))
      const outcomes = await Promise.all(contenders.map(who => acquireVmLease(context(who))))
      const winners = outcomes.filter(o => o.acquired)
      expect(winners, `round ${round}`).toHaveLength(1)
      const winner = acquired(winners[0]!)
      // every loser names the winner as the holder
      for (const o of outcomes) if (!o.acquired) expect(o.holder.run).toBe(winner.lease.record.run)
      const entries = [...(await vmLeaseEntries(client, vmRef, jobId)).values()]
      expect(entries.filter(e => e.released !== true && Date.parse(e.expires) > Date.now())).toEqual([
        winner.lease.record,
      ])
      // the winner renews while the losers try again: still exactly one holder
      const [renewed, ...again] = await Promise.all([
        winner.lease.renew(),
        ...contenders.map(who => acquireVmLease(context(who))),
      ])
      expect(renewed).toBe(true)
      expect(again.filter(o => o.acquired && o.lease.record.run !== winner.lease.record.run)).toEqual([])
      await winner.lease.release()
    }
  })

  it('is not won twice when a renewal races a takeover of the same expired lease', async () => {
    for (let round = 0; round < 10; round++) {
      jobId = `renew-race-${round}`
      const holder = acquired(await acquireVmLease(context(owner('holder'), 1_000)))
      const ahead = { ...context(owner('taker')), clock: () => Date.now() + 2_000 }
      const [renewed, taken] = await Promise.all([holder.lease.renew(), acquireVmLease(ahead)])
      // one of them holds it, never both
      expect(Number(renewed) + Number(taken.acquired), `round ${round}`).toBe(1)
      if (taken.acquired) await taken.lease.release()
      else await holder.lease.release()
    }
  })

  it("claimed from the pass's view of the VM costs one read and no more; a stale view loses to the live holder", async () => {
    const oc = (): Promise<Record<string, string>> => client.call('VM.get_other_config', [vmRef])
    const first = acquired(await acquireVmLease(context(owner('a'))))
    await first.lease.release()
    const view = await oc()
    lab.control.resetTransferStats()
    const a = acquired(await acquireVmLease(context(owner('a')), view))
    await a.lease.release()
    const calls = lab.control.transferStats('src').xapi.byMethod
    // add, read back, clear the tombstone below; release: add a tombstone, remove the entry
    expect(calls['VM.get_other_config']?.calls).toBe(1)
    expect(calls['VM.add_to_other_config']?.calls).toBe(2)
    expect(calls['VM.remove_from_other_config']?.calls).toBe(2)
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).values()]).toMatchObject([{ run: 'run-a', released: true }])

    // another controller takes the lease after our view was read: the view says free, the VM is not
    const stale = await oc()
    const b = acquired(await acquireVmLease(context(owner('b'))))
    const outcome = await acquireVmLease(context(owner('c')), stale)
    expect(outcome).toEqual({ acquired: false, holder: b.lease.record })
    // once b lets go, the same stale view still takes it, from b's tombstone (the view's top is older)
    await b.lease.release()
    const c = acquired(await acquireVmLease(context(owner('c')), stale))
    expect(c.previous).toMatchObject({ run: 'run-b', released: true })
    await c.lease.release()
  })

  it('released by a holder that was taken over and never renewed leaves the new holder on top', async () => {
    const stalled = acquired(await acquireVmLease(context(owner('stalled'), 1_000)))
    const later = { ...context(owner('b')), clock: () => Date.now() + 2_000 }
    const b = acquired(await acquireVmLease(later))
    // b renews past the entry above the stalled one's, so that the stalled release's tombstone is accepted
    expect(await b.lease.renew()).toBe(true)
    await stalled.lease.release()
    const entries = [...(await vmLeaseEntries(client, vmRef, jobId))].sort(
      ([x], [y]) => Number(x.split(':').at(-1)) - Number(y.split(':').at(-1)),
    )
    expect(entries.at(-1)?.[1]).toEqual(b.lease.record)
    // the VM is still b's: nobody else takes it
    expect((await acquireVmLease(context(owner('c')))).acquired).toBe(false)
    await b.lease.release()
    expect((await acquireVmLease(context(owner('c')))).acquired).toBe(true)
  })
})

describe('a VM lease held by a process of this host', () => {
  // this process as a controller: this host, this process table, a run of its own
  const here = (run: string): LeaseOwner => ({ host: hostname(), pid: process.pid, run, pids: currentProcessTable()! })

  it('whose process is gone (kill -9) is taken over at once, long before it expires', async () => {
    expect(currentProcessTable()).toMatch(/^[0-9a-f-]{36}\/pid:\[\d+\]$/)
    const killed = { host: hostname(), pid: await deadPid(), run: 'run-killed', pids: currentProcessTable()! }
    const held = await holdVmLease(client, vmUuid, jobId, { owner: killed, n: 4 })
    const a = acquired(await acquireVmLease(context(here('run-a'))))
    expect(a.previous).toEqual(held)
    expect(a.takeover).toBe('holder gone')
    expect([...(await vmLeaseEntries(client, vmRef, jobId)).keys()]).toEqual([`${leaseKeyPrefix(jobId)}5`])
    await a.lease.release()
  })

  it('whose process is alive is not taken over, whatever run asks', async () => {
    const child = await liveChild()
    try {
      const alive = { host: hostname(), pid: child.pid, run: 'run-child', pids: currentProcessTable()! }
      const held = await holdVmLease(client, vmUuid, jobId, { owner: alive })
      expect(await acquireVmLease(context(here('run-a')))).toEqual({ acquired: false, holder: held })
      // nor from the pass's view of the VM
      const view = await client.call<Record<string, string>>('VM.get_other_config', [vmRef])
      expect(await acquireVmLease(context(here('run-a')), view)).toEqual({ acquired: false, holder: held })
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('whose process is gone but which names no process table, or another one, waits for its expiry', async () => {
    const pid = await deadPid()
    // an older version's lease (no process table), then one of another container sharing the host name
    const old = await holdVmLease(client, vmUuid, jobId, { owner: { host: hostname(), pid, run: 'run-old' } })
    expect(await acquireVmLease(context(here('run-a')))).toEqual({ acquired: false, holder: old })
    jobId = `${jobId}-container`
    const elsewhere = { host: hostname(), pid, run: 'run-container', pids: `${currentProcessTable()!}0` }
    const other = await holdVmLease(client, vmUuid, jobId, { owner: elsewhere })
    expect(await acquireVmLease(context(here('run-a')))).toEqual({ acquired: false, holder: other })
  })

  it('of another host is not taken over because a process of ours lacks its pid', async () => {
    const pid = await deadPid()
    const remote = { host: 'controller-elsewhere', pid, run: 'run-remote', pids: currentProcessTable()! }
    const held = await holdVmLease(client, vmUuid, jobId, { owner: remote })
    expect(await acquireVmLease(context(here('run-a')))).toEqual({ acquired: false, holder: held })
  })
})
