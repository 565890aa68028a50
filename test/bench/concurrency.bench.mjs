/**
 * Benchmark (run by `npm run bench`, not `npm test`): a pass of many small VMs at concurrency
 * 1, 4 and 8. Efficiency at c is T1 ÷ (c × Tc) (1.0: c VMs at once take 1/c of the time). Each
 * repetition is a delta pass of every VM with one fresh 2 MiB block per VM, after one full pass
 * that is not measured; concurrencies alternate (1 4 8 as the lab answers, 1 4 8 with the wait
 * below, and again) so load on a shared machine hits them alike. Printed per concurrency: wall
 * time, the client's and the lab's CPU seconds (the lab runs in a child process) and XAPI calls
 * per VM (from `/lab/stats`). The CPU the two processes spend bounds what concurrency can win
 * on this machine: a pass cannot take less than (client + lab CPU) ÷ cores, so `ceiling` is the
 * efficiency T1 ÷ (c × that floor) could reach at best (below 1 once the pass is CPU-bound
 * rather than waiting).
 *
 * Each concurrency is measured twice: as the lab answers (0 ms per call), and with every XAPI
 * call of both pools waiting 10 ms in the lab first (a latency fault). A real host takes
 * milliseconds per call and seconds per snapshot or clone, time a client spends waiting; the
 * lab on the client's own cores answers in well under a millisecond, so there the pass is
 * CPU-bound on a small machine and efficiency measures the cores. With the wait, efficiency
 * measures what concurrency should win: whether the client overlaps the VMs' calls or
 * serialises them somewhere.
 *
 * XEN_CR_BENCH_VMS (default 50) sets the number of VMs; XEN_CR_BENCH_LATENCY_MS (default "0,10")
 * the waits per call.
 * Usage, after `npm run build`: `node test/bench/concurrency.bench.mjs [--runs N] [--json]`.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  ageLeases,
  coreCount,
  dist,
  envList,
  fmt,
  jsonOutput,
  makeJob,
  ownCpuSeconds,
  repetitions,
  requireBuild,
  startLabProcess,
  stats,
} from './control/common.mjs'

requireBuild()
const { XapiClient } = await import(dist('xapi/client.js'))
const { runPass } = await import(dist('replication/pass.js'))

const runs = repetitions(3)
const [vmCount] = envList('XEN_CR_BENCH_VMS', [50])
const levels = [1, 4, 8]
// Milliseconds every XAPI call waits in the lab before it runs (see the header).
const latencies = envList('XEN_CR_BENCH_LATENCY_MS', [0, 10])
const names = Array.from({ length: vmCount }, (_, i) => `small-${String(i).padStart(2, '0')}`)
const spec = {
  pools: [
    {
      name: 'src',
      srs: [{ name: 'Local storage' }],
      networks: [{ name: 'net0' }],
      vms: names.map((name, i) => ({
        name,
        powerState: 'Running',
        disks: [{ name: `${name} disk`, size: '4 MiB', filled: '2 MiB', seed: i + 1 }],
        networks: ['net0'],
      })),
    },
    { name: 'tgt', srs: [{ name: 'Replicas', size: '64 GiB' }], networks: [{ name: 'net0' }] },
  ],
}

const connect = pool => XapiClient.connect({ url: pool.url, user: pool.user, password: pool.password })

const dir = mkdtempSync(join(tmpdir(), 'xen-cr-bench-concurrency-'))
const lab = await startLabProcess(
  dir,
  spec,
  names.map(name => ['src', name]),
)
const key = (latencyMs, c) => `${latencyMs}/${c}`
const samples = new Map(latencies.flatMap(l => levels.map(c => [key(l, c), []])))
const loadBefore = loadavg()[0]
try {
  const [source, target] = await Promise.all([connect(lab.pool('src')), connect(lab.pool('tgt'))])
  try {
    let sr
    for (const record of (await target.getAllRecords('SR')).values())
      if (record.name_label === 'Replicas') sr = record.uuid
    const uuids = names.map(name => lab.vms[`src/${name}`].uuid)
    const check = (result, mode) => {
      const failed = result.results.filter(r => r.status !== 'success')
      if (failed.length > 0 || result.results.length !== vmCount)
        throw new Error(`pass failed: ${JSON.stringify(failed.slice(0, 2))}`)
      if (result.plans.some(p => p.mode !== mode)) throw new Error(`a VM's pass was not ${mode}`)
    }
    if (!jsonOutput) console.error(`concurrency: full pass of ${vmCount} VMs (not measured)…`)
    check(await runPass({ job: makeJob(uuids, sr, 8), source, target }), 'full')
    let seed = 1000
    for (let i = 0; i < runs; i++) {
      for (const latencyMs of latencies)
        for (const c of levels) {
          for (const uuid of uuids) await lab.touch('src', uuid, seed++)
          await ageLeases(source, uuids, makeJob(uuids, sr).id)
          await lab.resetStats()
          await lab.setCallLatency(latencyMs)
          const labCpu0 = lab.cpuSeconds()
          const cpu0 = ownCpuSeconds()
          const t0 = performance.now()
          const result = await runPass({ job: makeJob(uuids, sr, c), source, target })
          const wallS = (performance.now() - t0) / 1000
          const clientCpuS = ownCpuSeconds() - cpu0
          const labCpuS = lab.cpuSeconds() - labCpu0
          await lab.setCallLatency(0)
          check(result, 'delta')
          const [s, t] = await Promise.all([lab.stats('src'), lab.stats('tgt')])
          samples
            .get(key(latencyMs, c))
            .push({ wallS, clientCpuS, labCpuS, callsPerVm: (s.xapi.calls + t.xapi.calls) / vmCount })
          if (!jsonOutput) console.error(`  ${latencyMs} ms/call c${c}: ${wallS.toFixed(2)} s`)
        }
    }
  } finally {
    await source.close()
    await target.close()
  }
} finally {
  await lab.stop()
  rmSync(dir, { recursive: true, force: true })
}

const rows = latencies.flatMap(latencyMs => {
  const of = c => samples.get(key(latencyMs, c))
  const t1 = stats(of(1).map(s => s.wallS)).median
  return levels.map(c => {
    const cpuFloorS = stats(of(c).map(s => (s.clientCpuS + s.labCpuS) / coreCount))
    return {
      latencyMs,
      concurrency: c,
      wallS: stats(of(c).map(s => s.wallS)),
      // Per repetition against the median T1, so min/max show the spread of Tc.
      efficiency: stats(of(c).map(s => t1 / (c * s.wallS))),
      clientCpuS: stats(of(c).map(s => s.clientCpuS)),
      labCpuS: stats(of(c).map(s => s.labCpuS)),
      callsPerVm: stats(of(c).map(s => s.callsPerVm)),
      clientCpuMsPerVm: stats(of(c).map(s => (s.clientCpuS * 1000) / vmCount)),
      labCpuMsPerVm: stats(of(c).map(s => (s.labCpuS * 1000) / vmCount)),
      cpuFloorS,
      ceiling: Math.min(1, t1 / (c * cpuFloorS.median)),
    }
  })
})
// Wall times mean little on a machine that is busy with other work: the load average says how busy it was.
const load = { before: loadBefore, after: loadavg()[0] }

if (jsonOutput) {
  console.log(
    JSON.stringify({
      bench: 'concurrency',
      cores: coreCount,
      node: process.version,
      runs,
      vms: vmCount,
      latenciesMs: latencies,
      load,
      rows,
    }),
  )
} else {
  console.log(
    `${vmCount} small VMs, delta pass (one 2 MiB block each); ${runs} runs, ${coreCount} cores, node ${process.version}; ` +
      `load average ${load.before.toFixed(1)} before, ${load.after.toFixed(1)} after`,
  )
  console.log(
    `${'ms/call'.padStart(7)} ${'c'.padStart(2)}  ${'wall s'.padEnd(30)}${'T1 ÷ (c × Tc)'.padEnd(30)}client CPU s  lab CPU s  ` +
      `CPU floor s  ceiling  CPU ms/VM client, lab  calls/VM`,
  )
  for (const r of rows)
    console.log(
      `${String(r.latencyMs).padStart(7)} ${String(r.concurrency).padStart(2)}  ${fmt(r.wallS).padEnd(30)}${fmt(r.efficiency).padEnd(30)}` +
        `${r.clientCpuS.median.toFixed(2).padStart(12)}${r.labCpuS.median.toFixed(2).padStart(11)}` +
        `${r.cpuFloorS.median.toFixed(2).padStart(13)}${r.ceiling.toFixed(2).padStart(9)}` +
        `${`${r.clientCpuMsPerVm.median.toFixed(0)}, ${r.labCpuMsPerVm.median.toFixed(0)}`.padStart(25)}${r.callsPerVm.median.toFixed(1).padStart(10)}`,
    )
  console.log(
    `ms/call: what every XAPI call waited in the lab; CPU floor: (client + lab CPU) ÷ ${coreCount} cores, the least a pass can take here; ` +
      `ceiling: T1 ÷ (c × floor) (at most 1), the best efficiency that allows`,
  )
}
