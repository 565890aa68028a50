/**
 * Benchmark (run by `npm run bench`, not `npm test`): how close a delta export is to the data
 * that changed. For k = 1, 64 and 512 changed 2 MiB blocks (XEN_CR_BENCH_DELTA_K, e.g. "1,64"),
 * on a disk of XEN_CR_BENCH_DELTA_DISK (default 2 GiB): snapshot, write k blocks spread over the
 * disk, snapshot again, and export the second snapshot against the first through xen-cr's
 * `exportVdi` (a differencing VHD): bytes ÷ (k × 2 MiB). The VHD framing (footer, header, BAT,
 * one 512-byte bitmap per block) is the whole overhead, so the ratio is deterministic; it is
 * measured once per k and the export's wall time ≥ 3 times (`--runs N`).
 *
 * Usage, after `npm run build`: `node test/bench/delta-ratio.bench.mjs [--runs N] [--json]`.
 * Exits 1 if an export failed.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  GiB,
  MiB,
  coreCount,
  envSize,
  jsonOutput,
  repetitions,
  requireBuild,
  startLabProcess,
  stats,
} from './lib/lab-process.mjs'

requireBuild()
const BLOCK = 2 * MiB
const runs = repetitions(3)
const ks = (process.env['XEN_CR_BENCH_DELTA_K'] ?? '1,64,512').split(',').map(Number)
const disk = envSize('XEN_CR_BENCH_DELTA_DISK', 2 * GiB)
const log = jsonOutput ? () => undefined : line => console.log(line)
const dist = name => new URL(`../../dist/${name}`, import.meta.url).href
const { XapiClient } = await import(dist('xapi/client.js'))
const { exportVdi } = await import(dist('xapi/transfer.js'))
const { snapshotVdi } = await import(dist('xapi/vdi.js'))

const dir = await mkdtemp(join(tmpdir(), 'xen-cr-bench-delta-'))
const spec = {
  pools: [
    {
      name: 'src',
      srs: [{ name: 'bench-src', size: '1 TiB' }],
      vms: [{ name: 'delta', powerState: 'Halted', disks: [{ size: disk, filled: 16 * MiB, seed: 1 }] }],
    },
  ],
}

let failed = false
const result = { bench: 'delta-ratio', cores: coreCount, runs, rows: [] }
const lab = await startLabProcess(join(dir, 'lab'), spec)
const pool = lab.pools[0]
const client = await XapiClient.connect({ url: pool.url, user: pool.user, password: pool.password })
try {
  const [uuid] = lab.vms['src/delta']
  const vdi = await client.getByUuid('VDI', uuid)
  const blocks = Math.floor(disk / BLOCK)
  log(`delta bytes ÷ (changed blocks × 2 MiB), disk ${(disk / GiB).toFixed(2)} GiB, ${coreCount} cores`)
  for (const [n, k] of ks.entries()) {
    if (k > blocks) throw new Error(`k = ${k} is more than the disk's ${blocks} blocks`)
    const base = await snapshotVdi(client, vdi)
    const stride = Math.floor(blocks / k)
    const changed = Array.from({ length: k }, (_, i) => i * stride)
    const res = await fetch(new URL('/lab/guest-data', pool.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pool: pool.name, target: uuid, blocks: changed, seed: 1000 + n }),
    })
    if (!res.ok) throw new Error(`guest-data: HTTP ${res.status} ${await res.text()}`)
    const next = await snapshotVdi(client, vdi)
    const walls = []
    let bytes = 0
    for (let run = 0; run < runs; run++) {
      const started = process.hrtime.bigint()
      const exported = await exportVdi(client, next, { format: 'vhd', base })
      bytes = 0
      for await (const chunk of exported.stream) bytes += chunk.length
      await exported.done
      walls.push(Number(process.hrtime.bigint() - started) / 1e9)
    }
    const ratio = bytes / (k * BLOCK)
    const wall = stats(walls)
    result.rows.push({ k, bytes, ratio, wallS: wall })
    log(
      `  k = ${String(k).padStart(3)}: ${bytes} bytes, ratio ${ratio.toFixed(5)}; export ${wall.median.toFixed(3)} s ` +
        `(min ${wall.min.toFixed(3)}, max ${wall.max.toFixed(3)})`,
    )
  }
} catch (error) {
  failed = true
  console.error(error)
} finally {
  await client.close()
  await lab.stop()
  await rm(dir, { recursive: true, force: true })
}
if (jsonOutput) console.log(JSON.stringify({ ...result, failed }))
process.exitCode = failed ? 1 : 0
