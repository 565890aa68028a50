/**
 * Benchmark (run by `npm run bench`, not `npm test`): how many disk streams one controller
 * carries. Full passes (`forceFull`) of c VMs at concurrency c (c = 1, 2, 4, 8), one disk each
 * (XEN_CR_BENCH_STREAM_DISK, default 128 MiB, all of it written), so c streams run at once through
 * this process; levels alternate (1 2 4 8 1 2 4 8 …) so load on a shared machine hits them alike.
 * Printed per level: wall time, MiB/s in total and per stream (VHD bytes sent ÷ wall), and the
 * controller's and the lab's CPU seconds per GiB. The lab runs in a child process; over loopback
 * it does the hosts' work (export, import, storage), so on one machine it shares the CPU with the
 * controller and bounds it — on a real network the controller's NIC is the limit (each stream
 * crosses it twice: in from the source host, out to the target host).
 *
 * Usage, after `npm run build`: `node test/bench/streams.bench.mjs [--runs N] [--json]`.
 * No pass/fail: prints figures; exits 1 only if a pass failed.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  coreCount,
  cpuSecondsOf,
  dist,
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

const MiB = 1024 * 1024
const runs = repetitions(3)
const diskMiB = Number.parseInt(process.env['XEN_CR_BENCH_STREAM_DISK'] ?? '128', 10)
const levels = [1, 2, 4, 8]
const names = Array.from({ length: Math.max(...levels) }, (_, i) => `stream-${i}`)
const spec = {
  pools: [
    {
      name: 'src',
      srs: [{ name: 'Local storage' }],
      vms: names.map((name, i) => ({
        name,
        disks: [{ name: `${name} disk`, size: `${diskMiB} MiB`, filled: `${diskMiB} MiB`, seed: i + 1 }],
      })),
    },
    { name: 'tgt', srs: [{ name: 'Replicas', size: '256 GiB' }] },
  ],
}

const connect = pool => XapiClient.connect({ url: pool.url, user: pool.user, password: pool.password })
const dir = mkdtempSync(join(tmpdir(), 'xen-cr-bench-streams-'))
const lab = await startLabProcess(
  dir,
  spec,
  names.map(name => ['src', name]),
)
const samples = new Map(levels.map(c => [c, []]))
let failed = false
try {
  const [source, target] = await Promise.all([connect(lab.pool('src')), connect(lab.pool('tgt'))])
  try {
    let sr
    for (const record of (await target.getAllRecords('SR')).values())
      if (record.name_label === 'Replicas') sr = record.uuid
    const uuids = names.map(name => lab.vms[`src/${name}`].uuid)
    for (let i = 0; i < runs; i++) {
      for (const c of levels) {
        const vms = uuids.slice(0, c)
        const labCpu0 = cpuSecondsOf(lab.pid)
        const cpu0 = ownCpuSeconds()
        const t0 = performance.now()
        const result = await runPass({ job: makeJob(vms, sr, c), vmUuids: vms, forceFull: true, source, target })
        const wallS = (performance.now() - t0) / 1000
        const bytes = result.results.reduce((sum, r) => sum + (r.status === 'success' ? r.bytes : 0), 0)
        if (result.results.some(r => r.status !== 'success')) {
          failed = true
          console.error(`c${c}: ${JSON.stringify(result.results.filter(r => r.status !== 'success').slice(0, 1))}`)
          continue
        }
        const gib = bytes / 1024 ** 3
        samples.get(c).push({
          wallS,
          totalMiBs: bytes / MiB / wallS,
          perStreamMiBs: bytes / MiB / wallS / c,
          clientCpuPerGiB: (ownCpuSeconds() - cpu0) / gib,
          labCpuPerGiB: (cpuSecondsOf(lab.pid) - labCpu0) / gib,
        })
        if (!jsonOutput) console.error(`  c${c}: ${wallS.toFixed(2)} s, ${(bytes / MiB / wallS).toFixed(1)} MiB/s`)
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

const rows = levels.map(c => {
  const of = key => stats(samples.get(c).map(s => s[key]))
  return {
    streams: c,
    wallS: of('wallS'),
    totalMiBs: of('totalMiBs'),
    perStreamMiBs: of('perStreamMiBs'),
    clientCpuPerGiB: of('clientCpuPerGiB'),
    labCpuPerGiB: of('labCpuPerGiB'),
  }
})
if (jsonOutput) {
  console.log(JSON.stringify({ bench: 'streams', cores: coreCount, node: process.version, runs, diskMiB, rows }))
} else {
  console.log(
    `full passes, one ${diskMiB} MiB disk per VM, c VMs at concurrency c; ${runs} runs, ${coreCount} cores, node ${process.version}`,
  )
  console.log(
    `${'c'.padStart(2)}  ${'total MiB/s'.padEnd(28)}${'per stream MiB/s'.padEnd(28)}controller CPU s/GiB  lab CPU s/GiB`,
  )
  for (const r of rows)
    console.log(
      `${String(r.streams).padStart(2)}  ${fmt(r.totalMiBs, 1).padEnd(28)}${fmt(r.perStreamMiBs, 1).padEnd(28)}` +
        `${r.clientCpuPerGiB.median.toFixed(2).padStart(20)}${r.labCpuPerGiB.median.toFixed(2).padStart(15)}`,
    )
}
process.exitCode = failed ? 1 : 0
