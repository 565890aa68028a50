/**
 * How many XAPI calls a pass makes, counted by the lab (`/lab/stats` → `xapi.byMethod`): a
 * one-VM, one-disk delta pass in a 10-VM and in a 300-VM source pool. A count is deterministic
 * where a time is not: the pass must not read whole classes of the pool (four whole-pool
 * `get_all_records` made a pass of one VM in a 1,000-VM pool take 47 s instead of 15 s), and
 * must make the same calls whatever the size of the pool. Timings belong to `npm run bench`
 * (test/bench/control-plane.bench.mjs).
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { Job } from '../../src/jobs/types.js'
import type { Lab } from '../../src/lab/start.js'
import type { LabSpec } from '../../src/lab/spec.js'
import type { LabTransferStats } from '../../src/lab/transfer-stats.js'
import { leaseKeyPrefix } from '../../src/replication/metadata.js'
import { runPass } from '../../src/replication/pass.js'
import type { XapiClient } from '../../src/xapi/client.js'
import type { Ref } from '../../src/xapi/types.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'

type Calls = LabTransferStats['xapi']['byMethod']

/** Methods whose count depends on timing, not on the pass: task watching. */
const TASK_WATCHING = new Set(['event.from', 'event.inject', 'task.get_record'])
/**
 * Reads whose answer still grows with the pool: a network's record lists every VIF on it (one
 * per VM), and the source VIF's network is read whole with the snapshot's metadata
 * (src/delta/vm-metadata.ts: reading its uuid and name field by field would cost calls). Counted
 * like every other call; left out of the bytes comparison only.
 */
const GROWS_WITH_POOL = new Set(['network.get_all_records_where'])
const WHOLE_POOL = ['VM', 'VBD', 'VDI', 'SR'].map(cls => `${cls}.get_all_records`)
const isRead = (method: string): boolean => /^(Async\.)?\w+\.get_/.test(method) || method === 'event.from'

function spec(vmCount: number): LabSpec {
  return {
    pools: [
      {
        name: 'src',
        srs: [{ name: 'Local storage' }],
        networks: [{ name: 'net0' }],
        vms: Array.from({ length: vmCount }, (_, i) => ({
          name: `vm-${String(i).padStart(3, '0')}`,
          powerState: i === 0 ? ('Running' as const) : ('Halted' as const),
          disks: [{ size: '4 MiB', filled: i === 0 ? '2 MiB' : '0', seed: i + 1 }],
          networks: ['net0'],
        })),
      },
      { name: 'tgt', srs: [{ name: 'Replicas' }], networks: [{ name: 'net0' }] },
    ],
  }
}

interface Measured {
  readonly source: Calls
  readonly target: Calls
  readonly sourceBytes: number
  readonly targetBytes: number
}

let lab: Lab | undefined
const clients: XapiClient[] = []
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close()
  await lab?.stop()
  lab = undefined
})

/**
 * The lease a pass leaves is a tombstone saying when it let go; a pass that takes over within
 * seconds of that re-reads the records (pass.ts, RELEASE_SKEW_MS). Passes run hours apart, so
 * the tombstone is aged as time would age it, and the count is that of a routine pass.
 */
async function ageLeaseTombstone(source: XapiClient, vmRef: Ref<'VM'>, jobId: string): Promise<void> {
  const vm = await source.getRecord('VM', vmRef)
  for (const [key, raw] of Object.entries(vm.other_config)) {
    if (!key.startsWith(leaseKeyPrefix(jobId))) continue
    const aged = { ...(JSON.parse(raw) as Record<string, unknown>), expires: '2000-01-01T00:00:00.000Z' }
    await source.call('VM.remove_from_other_config', [vmRef, key])
    await source.call('VM.add_to_other_config', [vmRef, key, JSON.stringify(aged)])
  }
}

/** A job of `vmUuids` to the SR `srUuid`, one hourly schedule keeping 2; ids end in `idTail` and the next number. */
function countedJob(idTail: string, name: string, vmUuids: string[], srUuid: string, concurrency: number): Job {
  const id = (tail: string): string => `3f1c2a9e-5b7d-4c11-9e0f-0000000c${tail}`
  const next = (Number.parseInt(idTail, 16) + 1).toString(16).padStart(4, '0')
  return {
    id: id(idTail),
    name,
    enabled: true,
    source: 'src',
    vms: { uuids: vmUuids, tags: [], all: false },
    target: 'tgt',
    srs: [srUuid],
    schedules: [{ id: id(next), timing: { kind: 'interval', interval: '1h', intervalMs: 3_600_000 }, retention: 2 }],
    concurrency,
    fullInterval: 0,
    networkMap: {},
    createdAt: '2026-01-01T00:00:00.000Z',
  }
}

/** A full pass (not counted), one changed block, then the counted delta pass. */
async function deltaPassCalls(vmCount: number): Promise<Measured> {
  lab = await startTempLab(spec(vmCount))
  const source = await connectLabPool(labPool(lab, 'src'))
  clients.push(source)
  const target = await connectLabPool(labPool(lab, 'tgt'))
  clients.push(target)
  const vm = lab.control.findVm('src', 'vm-000')!
  const sr = [...(await target.getAllRecords('SR')).values()].find(s => s.name_label === 'Replicas')!
  const job = countedJob('0a11', 'counted', [vm.uuid], sr.uuid, 1)
  const full = await runPass({ job, source, target })
  expect(full.results.map(r => r.status)).toEqual(['success'])
  await ageLeaseTombstone(source, vm.ref as Ref<'VM'>, job.id)
  await lab.control.writeGuestData('src', vm.uuid, { blocks: [1], seed: 77 })

  lab.control.resetTransferStats()
  const delta = await runPass({ job, source, target })
  const src = lab.control.transferStats('src').xapi
  const tgt = lab.control.transferStats('tgt').xapi
  expect(delta.results.map(r => r.status)).toEqual(['success'])
  expect(delta.plans.map(p => p.targets.map(t => t.disks.map(d => d.mode)))).toEqual([[['delta']]])
  return { source: src.byMethod, target: tgt.byMethod, sourceBytes: src.bytes, targetBytes: tgt.bytes }
}

const total = (calls: Calls, keep: (method: string) => boolean = () => true): number =>
  Object.entries(calls).reduce((sum, [method, row]) => sum + (keep(method) ? row.calls : 0), 0)

/** Per pool and method, the calls that do not depend on timing. */
function deterministic(m: Measured): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [side, calls] of [
    ['src', m.source],
    ['tgt', m.target],
  ] as const)
    for (const [method, row] of Object.entries(calls))
      if (!TASK_WATCHING.has(method)) out[`${side} ${method}`] = row.calls
  return out
}

function table(small: Measured, large: Measured): string {
  const rows = new Map<string, [number, number, number, number]>()
  for (const [side, a, b] of [
    ['src', small.source, large.source],
    ['tgt', small.target, large.target],
  ] as const) {
    for (const method of new Set([...Object.keys(a), ...Object.keys(b)]))
      rows.set(`${side} ${method}`, [
        a[method]?.calls ?? 0,
        b[method]?.calls ?? 0,
        a[method]?.bytes ?? 0,
        b[method]?.bytes ?? 0,
      ])
  }
  const lines = [...rows]
    .sort((x, y) => y[1][1] - x[1][1] || x[0].localeCompare(y[0]))
    .map(
      ([key, [a, b, bytesA, bytesB]]) =>
        `${isRead(key.split(' ')[1]!) ? 'r' : 'w'} ${key.padEnd(44)}${String(a).padStart(5)}${String(b).padStart(6)}${String(bytesA).padStart(10)}${String(bytesB).padStart(10)}`,
    )
  return [`  ${'pool method'.padEnd(44)}   10   300  bytes@10 bytes@300`, ...lines].join('\n')
}

describe('XAPI calls of a one-VM, one-disk delta pass', () => {
  it('reads no whole class of the pool and makes the same calls in a 10-VM and a 300-VM source pool', async () => {
    const small = await deltaPassCalls(10)
    await lab?.stop()
    lab = undefined
    for (const client of clients.splice(0)) await client.close()
    const large = await deltaPassCalls(300)

    const all = (m: Measured): number => total(m.source) + total(m.target)
    const reads = (m: Measured): number =>
      total(m.source, x => isRead(x) && !TASK_WATCHING.has(x)) +
      total(m.target, x => isRead(x) && !TASK_WATCHING.has(x))
    const watching = (m: Measured): number =>
      total(m.source, x => TASK_WATCHING.has(x)) + total(m.target, x => TASK_WATCHING.has(x))
    console.info(
      `calls per pass: 10 VMs ${all(small)} (reads ${reads(small)}, task watching ${watching(small)}, other ${all(small) - reads(small) - watching(small)}); ` +
        `300 VMs ${all(large)} (reads ${reads(large)}, task watching ${watching(large)}, other ${all(large) - reads(large) - watching(large)}); ` +
        `bytes answered ${small.sourceBytes + small.targetBytes} vs ${large.sourceBytes + large.targetBytes}\n${table(small, large)}`,
    )

    // Without the fix: VM, VBD, VDI and SR.get_all_records on both pools, every pass.
    for (const m of [small, large])
      for (const calls of [m.source, m.target]) for (const method of WHOLE_POOL) expect(calls[method]).toBeUndefined()
    // The same calls, one for one, whatever the pool's size (task watching aside: it polls).
    expect(deterministic(large)).toEqual(deterministic(small))
    // Bounds as they stand (issue 11's target is ≤ 40 calls in all, task watching included; 85
    // before the watcher kept its token, the lease skipped its reads and metadata was read by
    // query; 62 before a tidy VM skipped the sweep's reads, imports lost their redirect probe,
    // VDI.clone became synchronous and the replica's disk and rotated snapshot's VBDs were taken
    // from the plan's records; 50 before VM.snapshot became a plain call; 47 now): the pass's
    // own reads are 8 queries (4 per pool), the snapshot's metadata 6, the target's networks and
    // PIFs 2 (VIF mapping), the lease's read back 1, the rotated snapshot's disks 1 (still in use
    // elsewhere?), the new replica's uuid 1.
    expect(reads(large)).toBeLessThanOrEqual(19)
    expect(all(large) - watching(large)).toBeLessThanOrEqual(45)
    // Task watching: event.from answers depend on timing (a transfer's progress), but no task of
    // the pass's own is read and no loop takes a new token: the clients' watchers hold one from the
    // previous pass, and every Async.* / task.create is made while they do.
    for (const m of [small, large]) {
      for (const calls of [m.source, m.target]) expect(calls['event.inject']).toBeUndefined()
      expect((m.source['task.get_record']?.calls ?? 0) + (m.target['task.get_record']?.calls ?? 0)).toBe(0)
      // the previous pass left the VM tidy: no read of tasks, nor of unattached disks
      for (const calls of [m.source, m.target]) expect(calls['task.get_all_records']).toBeUndefined()
    }
    // What the large pool's answers weigh is the small pool's, read for read.
    const readBytes = (m: Measured): number =>
      [m.source, m.target]
        .flatMap(calls => Object.entries(calls))
        .filter(([method]) => isRead(method) && !TASK_WATCHING.has(method) && !GROWS_WITH_POOL.has(method))
        .reduce((sum, [, row]) => sum + row.bytes, 0)
    expect(readBytes(large)).toBeGreaterThan(0)
    expect(readBytes(large)).toBeLessThan(readBytes(small) * 1.02)
  }, 900_000)

  it('reads the networks once per pass, not once per VM: three VMs on one network', async () => {
    lab = await startTempLab({
      pools: [
        {
          name: 'src',
          srs: [{ name: 'Local storage' }],
          networks: [{ name: 'net0' }],
          vms: ['a', 'b', 'c'].map((name, i) => ({
            name,
            disks: [{ size: '4 MiB', filled: '2 MiB', seed: i + 1 }],
            networks: ['net0'],
          })),
        },
        { name: 'tgt', srs: [{ name: 'Replicas' }], networks: [{ name: 'net0' }] },
      ],
    })
    const source = await connectLabPool(labPool(lab, 'src'))
    clients.push(source)
    const target = await connectLabPool(labPool(lab, 'tgt'))
    clients.push(target)
    const sr = [...(await target.getAllRecords('SR')).values()].find(s => s.name_label === 'Replicas')!
    const uuids = ['a', 'b', 'c'].map(name => lab!.control.findVm('src', name)!.uuid)
    const job = countedJob('0a21', 'networks', uuids, sr.uuid, 2)
    lab.control.resetTransferStats()
    const pass = await runPass({ job, source, target })
    expect(pass.results.map(r => r.status)).toEqual(['success', 'success', 'success'])
    const calls = (pool: string, method: string): number =>
      lab!.control.transferStats(pool).xapi.byMethod[method]?.calls ?? 0
    // the VIFs' network and its PIF on the source, every network and PIF of the target: once each
    expect([
      calls('src', 'network.get_all_records_where'),
      calls('src', 'PIF.get_all_records_where'),
      calls('tgt', 'network.get_all_records'),
      calls('tgt', 'PIF.get_all_records'),
    ]).toEqual([1, 1, 1, 1])
    expect(calls('src', 'VIF.get_all_records_where')).toBe(3)
    expect(calls('tgt', 'VIF.create')).toBe(3)
  }, 120_000)
})
