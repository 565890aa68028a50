/**
 * Shared by the control-plane benchmarks (control-plane.bench.mjs, concurrency.bench.mjs): a lab
 * in a child process, its CPU seconds, the lab's per-pool call counters, a job, statistics.
 */
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnLabChild } from '../lib/lab-process.mjs'

export { coreCount, cpuSecondsOf, jsonOutput, repetitions } from '../lib/lab-process.mjs'

const LAB_CHILD = fileURLToPath(new URL('./lab.child.mjs', import.meta.url))
export const dist = name => new URL(`../../../dist/${name}`, import.meta.url).href

/** Exits 2 with a hint when the build is missing. */
export function requireBuild() {
  const main = fileURLToPath(dist('replication/pass.js'))
  if (!existsSync(main)) {
    console.error(`${main} is missing: run \`npm run build\` first`)
    process.exit(2)
  }
}

/** A list of whole numbers from the environment (`"10,1000"`), else `fallback`. */
export function envList(name, fallback) {
  const text = process.env[name]
  if (text === undefined || text === '') return fallback
  return text.split(',').map(Number)
}

/** This process's CPU seconds so far. */
export function ownCpuSeconds() {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/** Starts a lab in a child process; resolves once it listens. */
export async function startLabProcess(dir, spec, vms) {
  // The spec goes through a file: a large pool's spec is beyond what one environment string may hold.
  const specFile = join(dir, 'spec.json')
  writeFileSync(specFile, JSON.stringify(spec))
  // XEN_CR_BENCH_LAB_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the lab apart from the client.
  const nodeArgs = (process.env['XEN_CR_BENCH_LAB_NODE_ARGS'] ?? '').split(' ').filter(a => a !== '')
  const info = await spawnLabChild(
    LAB_CHILD,
    { XEN_CR_BENCH_LAB: JSON.stringify({ dir: join(dir, 'lab'), spec: specFile, vms }) },
    nodeArgs,
  )
  const control = async (method, path, body) => {
    const res = await fetch(`${info.pools[0].url}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    })
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`)
    return res.json()
  }
  return {
    ...info,
    pool: name => info.pools.find(p => p.name === name),
    /** `/lab/stats` of one pool */
    stats: name => control('GET', `/lab/stats?pool=${encodeURIComponent(name)}`),
    resetStats: () => control('DELETE', '/lab/stats'),
    /**
     * Every XAPI call of both pools waits `ms` before it runs (a lab latency fault), as calls to
     * a real host take time the client spends waiting, not computing; 0 removes the delay.
     */
    setCallLatency: async ms => {
      await control('DELETE', '/lab/faults')
      if (ms > 0)
        for (const p of info.pools)
          await control('POST', '/lab/faults', { pool: p.name, fault: { kind: 'latency', ms } })
    },
    /** one block of fresh guest data in the VM's first disk */
    touch: (poolName, vmUuid, seed) =>
      control('POST', '/lab/guest-data', { pool: poolName, target: vmUuid, blocks: [seed % 2], seed }),
  }
}

/** A job replicating `vmUuids` from pool `src` to one SR of pool `tgt`. */
export function makeJob(vmUuids, srUuid, concurrency = 1) {
  return {
    id: '7c0e9a52-0d0b-4a55-8f43-b3a1c0ffee01',
    name: 'bench',
    enabled: true,
    source: 'src',
    vms: { uuids: vmUuids, tags: [], all: false },
    target: 'tgt',
    srs: [srUuid],
    schedules: [
      {
        id: '7c0e9a52-0d0b-4a55-8f43-b3a1c0ffee02',
        timing: { kind: 'interval', interval: '1h', intervalMs: 3_600_000 },
        retention: 2,
      },
    ],
    concurrency,
    fullInterval: 0,
    networkMap: {},
    createdAt: '2026-01-01T00:00:00.000Z',
  }
}

/** Reads: `get_*` messages and `event.from`; everything else writes or acts (create, clone, task.destroy…). */
export const isRead = method => /^(Async\.)?[A-Za-z_]+\.get_/.test(method) || method === 'event.from'

/** Calls whose number depends on timing, not on the pass: task watching (events, polls of a task). */
export const isTaskWatch = method =>
  method === 'event.from' || method === 'event.inject' || method === 'task.get_record'

/** Calls and answer bytes of one `/lab/stats` xapi section, split into reads and the rest. */
export function splitCalls(xapi) {
  const out = { calls: xapi.calls, bytes: xapi.bytes, reads: 0, readBytes: 0, other: 0, taskWatch: 0 }
  for (const [method, row] of Object.entries(xapi.byMethod)) {
    if (isTaskWatch(method)) out.taskWatch += row.calls
    if (isRead(method)) {
      out.reads += row.calls
      out.readBytes += row.bytes
    } else out.other += row.calls
  }
  return out
}

/** min / median / max of numbers. */
export function stats(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  return { min: sorted[0], median, max: sorted.at(-1) }
}

export function fmt(s, digits = 2, unit = '') {
  return `${s.median.toFixed(digits)}${unit} (min ${s.min.toFixed(digits)}, max ${s.max.toFixed(digits)})`
}

/**
 * Ages the lease tombstones a pass left on these VMs (`xen-cr:lease:<job>:<n>`, a JSON record
 * whose `expires` is when it let go) as an hour between passes would: a pass that takes a lease
 * over within seconds of its release reads the records again (replication/pass.ts), which a
 * routine pass does not. Measurements of a pass then measure the routine one.
 */
export async function ageLeases(client, vmUuids, jobId) {
  const prefix = `xen-cr:lease:${jobId}:`
  for (const uuid of vmUuids) {
    const ref = await client.call('VM.get_by_uuid', [uuid])
    const otherConfig = await client.call('VM.get_other_config', [ref])
    for (const [key, raw] of Object.entries(otherConfig)) {
      if (!key.startsWith(prefix)) continue
      const aged = { ...JSON.parse(raw), expires: '2000-01-01T00:00:00.000Z' }
      await client.call('VM.remove_from_other_config', [ref, key])
      await client.call('VM.add_to_other_config', [ref, key, JSON.stringify(aged)])
    }
  }
}
