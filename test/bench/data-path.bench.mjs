/**
 * Benchmark (run by `npm run bench`, not `npm test`): xen-cr's disk data path against a plain
 * relay of the same VHD bytes between the same hosts (issue 11).
 *
 * A lab runs in a child process; every transfer runs in a fresh child of its own
 * (test/bench/lib/transfer.child.mjs), so the client's CPU time and the lab's are read apart.
 * - one disk (XEN_CR_BENCH_DISK, default 2 GiB, XEN_CR_BENCH_ALLOCATED of it written, default
 *   1.5 GiB): xen-cr's `transferDisk` ÷ the relay (`GET /export_raw_vdi` piped into `PUT
 *   /import_raw_vdi` with the known length, node:http only, no xen-cr code), wall and client CPU;
 * - one VM with 4 disks (XEN_CR_BENCH_FOUR_DISK / _FOUR_ALLOCATED, default 1 GiB / 768 MiB each):
 *   4 parallel `transferDisk` ÷ 4 parallel relays.
 * Runs alternate relay, xen-cr, relay, xen-cr… (≥ 3 pairs, `--runs N`), so load on the shared
 * machine hits both alike; ratios are per pair (min / median / max) and of the medians.
 * Where the time goes: the lab's export alone into a null sink, its import alone from a file of
 * the same bytes, and the lab's CPU seconds during each run — if the relay is no faster than the
 * lab alone, the lab is what bounds both.
 *
 * The read path over NBD (`VDI.get_nbd_info`, xen-cr's NbdClient, XEN_CR_BENCH_NBD_CONNECTIONS
 * connections, default 4, 2 MiB reads; XEN_CR_BENCH_NBD=0 skips it) is timed against the HTTP
 * export alone for the one disk: the same data, read into a null sink.
 *
 * `--cpu-prof`: one more xen-cr run and one relay run under `node --cpu-prof`; prints the share of
 * samples in garbage collection (profiles kept in the directory printed).
 *
 * Usage, after `npm run build`: `node test/bench/data-path.bench.mjs [--runs N] [--json] [--cpu-prof]`.
 * A quick run: `XEN_CR_BENCH_DISK='256 MiB' XEN_CR_BENCH_ALLOCATED='192 MiB' XEN_CR_BENCH_FOUR_DISK='128 MiB'
 * XEN_CR_BENCH_FOUR_ALLOCATED='96 MiB' node test/bench/data-path.bench.mjs`.
 * No pass/fail: prints figures; exits 1 only if a transfer failed or moved a wrong byte count.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  GiB,
  MiB,
  coreCount,
  envInt,
  envSize,
  fmt,
  jsonOutput,
  repetitions,
  requireBuild,
  runChild,
  size,
  startLabProcess,
  stats,
} from './lib/lab-process.mjs'

requireBuild()
const runs = repetitions(3)
const profile = process.argv.includes('--cpu-prof')
const nbd = process.env['XEN_CR_BENCH_NBD'] !== '0'
const nbdConnections = envInt('XEN_CR_BENCH_NBD_CONNECTIONS', 4)
const one = { size: envSize('XEN_CR_BENCH_DISK', 2 * GiB), filled: envSize('XEN_CR_BENCH_ALLOCATED', 1.5 * GiB) }
const four = {
  size: envSize('XEN_CR_BENCH_FOUR_DISK', GiB),
  filled: envSize('XEN_CR_BENCH_FOUR_ALLOCATED', 768 * MiB),
}
const pct = share => `${(share * 100).toFixed(1)} %`
const log = jsonOutput ? () => undefined : line => console.log(line)

const dir = await mkdtemp(join(tmpdir(), 'xen-cr-bench-data-'))
const spec = {
  pools: [
    {
      name: 'src',
      srs: [{ name: 'bench-src', size: '2 TiB' }],
      networks: [{ name: 'bench-management', purpose: ['nbd'] }],
      vms: [
        { name: 'one', powerState: 'Halted', disks: [{ size: one.size, filled: one.filled, seed: 1 }] },
        {
          name: 'four',
          powerState: 'Halted',
          disks: [1, 2, 3, 4].map(i => ({ size: four.size, filled: four.filled, seed: 10 + i })),
        },
      ],
    },
    { name: 'dst', srs: [{ name: 'bench-dst', size: '2 TiB' }] },
  ],
}

let failed = false
const result = { bench: 'data-path', cores: coreCount, runs, rows: {} }
const lab = await startLabProcess(join(dir, 'lab'), spec)
try {
  const pool = name => {
    const p = lab.pools.find(x => x.name === name)
    return { url: p.url, user: p.user, password: p.password }
  }
  const base = { source: pool('src'), target: pool('dst'), targetSr: 'bench-dst' }
  log(
    `data path: ${coreCount} cores, ${runs} runs each; one disk ${size(one.size)} (${size(one.filled)} allocated), ` +
      `one VM of 4 disks ${size(four.size)} (${size(four.filled)} allocated each)`,
  )

  for (const [key, vm, label] of [
    ['oneDisk', 'one', 'one disk'],
    ['fourDisks', 'four', '4 disks of one VM'],
  ]) {
    // the export's bytes, once into files: their length for the relay, the import's source
    const files = lab.vms[`src/${vm}`].map((uuid, i) => ({ vdiUuid: uuid, file: join(dir, `${vm}-${i}.vhd`) }))
    const saved = await runChild({ ...base, mode: 'export', disks: files }, lab)
    const disks = files.map((d, i) => ({ ...d, length: saved.bytes[i] }))
    const total = saved.bytes.reduce((a, b) => a + b, 0)
    const samples = { relay: [], xencr: [], export: [], import: [], nbd: [] }
    const filled = key === 'oneDisk' ? one.filled : four.filled
    const modes = ['relay', 'xencr', 'export', 'import', ...(nbd && key === 'oneDisk' ? ['nbd'] : [])]
    for (let run = 0; run < runs; run++) {
      for (const mode of modes) {
        const job = {
          ...base,
          mode,
          nbdConnections,
          disks:
            mode === 'export' || mode === 'nbd' ? disks.map(d => ({ vdiUuid: d.vdiUuid, readBytes: filled })) : disks,
        }
        const r = await runChild(job, lab)
        const moved = r.bytes.reduce((a, b) => a + b, 0)
        if (moved !== (mode === 'nbd' ? filled * disks.length : total)) {
          failed = true
          log(
            `  ${mode} run ${run + 1}: moved ${moved} bytes, expected ${mode === 'nbd' ? filled * disks.length : total}`,
          )
        }
        samples[mode].push(r)
      }
    }
    const wall = mode => stats(samples[mode].map(r => r.wallMs / 1000))
    const cpu = mode => stats(samples[mode].map(r => r.cpuMs / 1000))
    const labCpu = mode => stats(samples[mode].map(r => r.labCpuS))
    const pairs = (f, a, b) => stats(samples[a].map((r, i) => f(r) / f(samples[b][i])))
    const wallRatio = pairs(r => r.wallMs, 'xencr', 'relay')
    const cpuRatio = pairs(r => r.cpuMs, 'xencr', 'relay')
    const row = {
      bytes: total,
      wallS: { relay: wall('relay'), xencr: wall('xencr'), exportAlone: wall('export'), importAlone: wall('import') },
      clientCpuS: { relay: cpu('relay'), xencr: cpu('xencr') },
      labCpuS: {
        relay: labCpu('relay'),
        xencr: labCpu('xencr'),
        exportAlone: labCpu('export'),
        importAlone: labCpu('import'),
      },
      wallRatio,
      wallRatioOfMedians: wall('xencr').median / wall('relay').median,
      cpuRatio,
      cpuRatioOfMedians: cpu('xencr').median / cpu('relay').median,
      throughputMiBs: { relay: total / MiB / wall('relay').median, xencr: total / MiB / wall('xencr').median },
    }
    result.rows[key] = row
    log(`${label}: ${size(total)} of VHD per pass`)
    log(`  wall s     relay ${fmt(row.wallS.relay)}   xen-cr ${fmt(row.wallS.xencr)}`)
    log(`  wall xen-cr ÷ relay per pair ${fmt(wallRatio, 3)}; of the medians ${row.wallRatioOfMedians.toFixed(3)}`)
    log(
      `  throughput relay ${row.throughputMiBs.relay.toFixed(0)} MiB/s, xen-cr ${row.throughputMiBs.xencr.toFixed(0)} MiB/s`,
    )
    log(`  client CPU s relay ${fmt(row.clientCpuS.relay)}   xen-cr ${fmt(row.clientCpuS.xencr)}`)
    log(`  client CPU xen-cr ÷ relay per pair ${fmt(cpuRatio, 3)}; of the medians ${row.cpuRatioOfMedians.toFixed(3)}`)
    log(
      `  where the time goes: lab export alone ${fmt(row.wallS.exportAlone)} s (lab CPU ${fmt(row.labCpuS.exportAlone)} s), ` +
        `lab import alone ${fmt(row.wallS.importAlone)} s (lab CPU ${fmt(row.labCpuS.importAlone)} s); ` +
        `lab CPU during relay ${fmt(row.labCpuS.relay)} s, during xen-cr ${fmt(row.labCpuS.xencr)} s`,
    )
    if (samples.nbd.length > 0) {
      const nbdRatio = pairs(r => r.wallMs, 'nbd', 'export')
      row.nbd = {
        connections: nbdConnections,
        wallS: wall('nbd'),
        clientCpuS: cpu('nbd'),
        labCpuS: labCpu('nbd'),
        wallRatioToHttpExport: nbdRatio,
        throughputMiBs: { nbd: filled / MiB / wall('nbd').median, httpExport: total / MiB / wall('export').median },
      }
      log(
        `  read path: NBD (${nbdConnections} connections, ${size(filled)} of data) ${fmt(row.nbd.wallS)} s, ` +
          `client CPU ${fmt(row.nbd.clientCpuS)} s, lab CPU ${fmt(row.nbd.labCpuS)} s; ` +
          `÷ HTTP export alone per pair ${fmt(nbdRatio, 3)} ` +
          `(${row.nbd.throughputMiBs.nbd.toFixed(0)} vs ${row.nbd.throughputMiBs.httpExport.toFixed(0)} MiB/s)`,
      )
    }

    if (profile && key === 'oneDisk') {
      const profDir = join(tmpdir(), `xen-cr-bench-prof-${Date.now()}`)
      const shares = {}
      for (const mode of ['relay', 'xencr']) {
        const out = join(profDir, mode)
        await runChild({ ...base, mode, disks }, lab, ['--cpu-prof', '--cpu-prof-dir', out])
        const [name] = await readdir(out)
        shares[mode] = gcShare(JSON.parse(await readFile(join(out, name), 'utf8')))
      }
      row.gcShare = shares
      log(
        `  --cpu-prof: garbage collection ${pct(shares.xencr.gc)} of xen-cr's samples (${pct(shares.xencr.gcOfBusy)} of its busy ones), ` +
          `${pct(shares.relay.gc)} of the relay's (${pct(shares.relay.gcOfBusy)}); profiles in ${profDir}`,
      )
    }
  }
} catch (error) {
  failed = true
  console.error(error)
} finally {
  await lab.stop()
  await rm(dir, { recursive: true, force: true })
}
if (jsonOutput) console.log(JSON.stringify({ ...result, failed }))
process.exitCode = failed ? 1 : 0

/** Share of a V8 CPU profile's samples in `(garbage collector)` and in `(idle)`. */
function gcShare(prof) {
  const names = new Map(prof.nodes.map(n => [n.id, n.callFrame.functionName]))
  let gc = 0
  let idle = 0
  for (const id of prof.samples) {
    const name = names.get(id)
    if (name === '(garbage collector)') gc++
    else if (name === '(idle)') idle++
  }
  const total = prof.samples.length
  return { gc: gc / total, gcOfBusy: gc / Math.max(1, total - idle), samples: total }
}
