/**
 * Benchmark (run by `npm run bench`, not `npm test`): peak RSS of a client transfer must not grow
 * with the disk (DESIGN: never buffer a disk), nor much with the number of disks in flight.
 * A full pass of one disk (`transferDisk`: export → normalise → import, with tasks, as a
 * replication pass runs it) runs in a child process of its own (test/bench/lib/transfer.child.mjs,
 * so neither the lab's memory nor the benchmark's counts) for disks with 256 MiB, 2 GiB and 8 GiB
 * allocated (XEN_CR_BENCH_MEM_SIZES, e.g. `"256 MiB,2 GiB"`), then 8 disks at once
 * (XEN_CR_BENCH_MEM_CONCURRENCY, default 8; XEN_CR_BENCH_MEM_EACH allocated each, default 512 MiB).
 * The peak is the kernel's maxRSS of the child. Targets (issue 11): ≤ 128 MiB and flat for one
 * disk, ≤ 160 MiB at concurrency 8.
 *
 * RSS is load-sensitive, hence a benchmark: V8 lets dead Buffers pile up before collecting them.
 * Each size runs ≥ 3 times (`--runs N`); min / median / max are printed, and the lowest peaks of
 * the smallest and largest disk may differ by at most 32 MiB (`PASS`/`FAIL`). `npm test` keeps a
 * deterministic check of the same transfer (`test/integration/xapi-transfer-memory.test.ts`).
 *
 * The lab's HTTP server keeps node's default request timeout (5 minutes): on a machine so busy
 * that 8 GiB take longer than that to go through, the import is cut (VDI_IO_ERROR); pick smaller
 * sizes there, e.g. XEN_CR_BENCH_MEM_SIZES='256 MiB,2 GiB,4 GiB'.
 *
 * Usage, after `npm run build`: `node test/bench/transfer-memory.bench.mjs [--runs N] [--json]`.
 * Exits 1 on FAIL or if a transfer did not move every byte.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  GiB,
  MiB,
  coreCount,
  envInt,
  envSize,
  jsonOutput,
  repetitions,
  requireBuild,
  runChild,
  size,
  startLabProcess,
  stats,
} from './lib/lab-process.mjs'

requireBuild()
const BLOCK = 2 * MiB
const MARGIN = 32 * MiB
const runs = repetitions(3)
const sizes = (process.env['XEN_CR_BENCH_MEM_SIZES'] ?? '256 MiB,2 GiB,8 GiB').split(',').map((text, i) => {
  process.env[`XEN_CR_BENCH_MEM_SIZE_${i}`] = text
  return envSize(`XEN_CR_BENCH_MEM_SIZE_${i}`, 0)
})
const concurrency = envInt('XEN_CR_BENCH_MEM_CONCURRENCY', 8)
const each = envSize('XEN_CR_BENCH_MEM_EACH', 512 * MiB)
const log = jsonOutput ? () => undefined : line => console.log(line)
const mib = bytes => `${(bytes / MiB).toFixed(1)} MiB`
/** the disk: allocated rounded up to whole blocks, at least 2 GiB virtual */
const virtual = allocated => Math.max(2 * GiB, Math.ceil(allocated / BLOCK) * BLOCK)

const dir = await mkdtemp(join(tmpdir(), 'xen-cr-bench-mem-'))
const spec = {
  pools: [
    {
      name: 'src',
      srs: [{ name: 'bench-src', size: '4 TiB' }],
      vms: [
        ...sizes.map((allocated, i) => ({
          name: `size-${i}`,
          powerState: 'Halted',
          disks: [{ size: virtual(allocated), filled: allocated, seed: i + 1 }],
        })),
        {
          name: 'many',
          powerState: 'Halted',
          disks: Array.from({ length: concurrency }, (_, i) => ({ size: virtual(each), filled: each, seed: 100 + i })),
        },
      ],
    },
    { name: 'dst', srs: [{ name: 'bench-dst', size: '4 TiB' }] },
  ],
}

let failed = false
const result = { bench: 'transfer-memory', cores: coreCount, runs, rows: [] }
const lab = await startLabProcess(join(dir, 'lab'), spec)
try {
  const pool = name => {
    const p = lab.pools.find(x => x.name === name)
    return { url: p.url, user: p.user, password: p.password }
  }
  const base = { source: pool('src'), target: pool('dst'), targetSr: 'bench-dst', mode: 'xencr' }
  const cases = [
    ...sizes.map((allocated, i) => ({ label: `${size(allocated)} allocated`, vm: `size-${i}`, allocated })),
    { label: `${concurrency} disks of ${size(each)} at once`, vm: 'many', allocated: each, concurrent: true },
  ]
  log(`peak RSS of a full pass (transferDisk in a child), ${coreCount} cores, ${runs} runs each`)
  for (const c of cases) {
    const disks = lab.vms[`src/${c.vm}`].map(vdiUuid => ({ vdiUuid }))
    const peaks = []
    for (let run = 0; run < runs; run++) {
      const r = await runChild({ ...base, disks }, lab)
      // a full VHD: prologue (footer copy, header, BAT) + every block with its bitmap + footer
      const complete = r.bytes.every(bytes => bytes >= (c.allocated / BLOCK) * (BLOCK + 512))
      if (!complete) failed = true
      peaks.push(r)
      log(
        `  ${c.label}: peak RSS ${mib(r.maxRss)} (${mib(r.rssBefore)} before the transfer), ${(r.wallMs / 1000).toFixed(1)} s, ` +
          `client CPU ${(r.cpuMs / 1000).toFixed(2)} s${complete ? '' : ` — INCOMPLETE: ${r.bytes.join(', ')} bytes`}`,
      )
    }
    const s = stats(peaks.map(r => r.maxRss / MiB))
    result.rows.push({ case: c.label, peakRssMiB: s, lowest: s.min })
    log(`${c.label}: peak RSS MiB ${s.median.toFixed(1)} (min ${s.min.toFixed(1)}, max ${s.max.toFixed(1)})`)
  }
  const single = result.rows.slice(0, sizes.length)
  const difference = (single.at(-1).lowest - single[0].lowest) * MiB
  const pass = difference <= MARGIN
  if (!pass) failed = true
  result.flatDifferenceMiB = difference / MiB
  log(
    `lowest peaks ${single.map(r => `${r.case} ${r.lowest.toFixed(1)} MiB`).join(', ')}; ` +
      `difference ${mib(difference)} (margin ${mib(MARGIN)}): ${pass ? 'PASS' : 'FAIL'}`,
  )
} catch (error) {
  failed = true
  console.error(error)
} finally {
  await lab.stop()
  await rm(dir, { recursive: true, force: true })
}
if (jsonOutput) console.log(JSON.stringify({ ...result, failed }))
process.exitCode = failed ? 1 : 0
