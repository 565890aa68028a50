/**
 * Benchmark (run by `npm run bench`, not `npm test`): the control plane of a replication pass.
 *
 * 1. XAPI calls and the bytes of their answers for a one-VM, one-disk delta pass, in a small and
 *    in a large source pool (XEN_CR_BENCH_POOL_SIZES, default "10,1000" VMs of one small disk
 *    each), split into reads (`get_*`, events) and the rest (writes, actions, tasks), with the
 *    per-method table of the large pool. Counts come from the lab's `/lab/stats`; the target is
 *    a pool of its own. Each pass also reports wall time and where the CPU went (client, lab).
 * 2. The fixed cost of `xen-cr run <job>` from process start to its first `vm-start` event (a
 *    delta pass of one VM, `--json`), next to the time of one login.
 *
 * The lab runs in a child process. Passes run in this process through `runPass` (dist/).
 * Usage, after `npm run build`: `node test/bench/control-plane.bench.mjs [--runs N] [--json]`.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  coreCount,
  dist,
  envList,
  fmt,
  isRead,
  jsonOutput,
  makeJob,
  ageLeases,
  ownCpuSeconds,
  repetitions,
  requireBuild,
  splitCalls,
  startLabProcess,
  stats,
} from './control/common.mjs'

requireBuild()
const { XapiClient } = await import(dist('xapi/client.js'))
const { runPass } = await import(dist('replication/pass.js'))
const BIN = fileURLToPath(new URL('../../bin/xen-cr.js', import.meta.url))

const runs = repetitions(3)
const poolSizes = envList('XEN_CR_BENCH_POOL_SIZES', [10, 1000])
const log = (...line) => {
  if (!jsonOutput) console.error(...line)
}

function spec(vmCount) {
  const vms = Array.from({ length: vmCount }, (_, i) => ({
    name: `vm-${String(i).padStart(4, '0')}`,
    powerState: i === 0 ? 'Running' : 'Halted',
    disks: [{ name: `disk-${i}`, size: '4 MiB', filled: '1 MiB', seed: i + 1 }],
    networks: ['net0'],
  }))
  return {
    pools: [
      { name: 'src', srs: [{ name: 'Local storage' }], networks: [{ name: 'net0' }], vms },
      { name: 'tgt', srs: [{ name: 'Replicas' }], networks: [{ name: 'net0' }] },
    ],
  }
}

const connect = pool => XapiClient.connect({ url: pool.url, user: pool.user, password: pool.password })

async function targetSr(client) {
  for (const sr of (await client.getAllRecords('SR')).values()) if (sr.name_label === 'Replicas') return sr.uuid
  throw new Error('no SR Replicas on the target')
}

/** One measured delta pass; the lab's counters are reset first. */
async function measuredPass(lab, job, source, target, seed) {
  await lab.touch('src', job.vms.uuids[0], seed)
  await ageLeases(source, job.vms.uuids, job.id)
  await lab.resetStats()
  const labCpu0 = lab.cpuSeconds()
  const cpu0 = ownCpuSeconds()
  const t0 = performance.now()
  const result = await runPass({ job, source, target })
  const wallS = (performance.now() - t0) / 1000
  const clientCpuS = ownCpuSeconds() - cpu0
  const labCpuS = lab.cpuSeconds() - labCpu0
  const failed = result.results.filter(r => r.status !== 'success' && r.status !== 'ok')
  const modes = result.plans.map(p => p.mode)
  if (result.results.length !== 1 || failed.length > 0 || modes[0] !== 'delta')
    throw new Error(`the measured pass was not one successful delta: ${JSON.stringify(result.results)} ${modes}`)
  const [src, tgt] = await Promise.all([lab.stats('src'), lab.stats('tgt')])
  return { wallS, clientCpuS, labCpuS, src: src.xapi, tgt: tgt.xapi }
}

function byMethod(sample) {
  const rows = new Map()
  for (const [side, xapi] of [
    ['src', sample.src],
    ['tgt', sample.tgt],
  ])
    for (const [method, row] of Object.entries(xapi.byMethod)) rows.set(`${side} ${method}`, row)
  return [...rows].sort((a, b) => b[1].calls - a[1].calls || a[0].localeCompare(b[0]))
}

async function passCalls(vmCount) {
  const dir = mkdtempSync(join(tmpdir(), 'xen-cr-bench-calls-'))
  const lab = await startLabProcess(dir, spec(vmCount), [['src', 'vm-0000']])
  try {
    const [source, target] = await Promise.all([connect(lab.pool('src')), connect(lab.pool('tgt'))])
    try {
      const job = makeJob([lab.vms['src/vm-0000'].uuid], await targetSr(target))
      const first = await runPass({ job, source, target })
      if (first.results[0]?.status === 'failed') throw new Error(`full pass failed: ${JSON.stringify(first.results)}`)
      const samples = []
      for (let i = 0; i < runs; i++) samples.push(await measuredPass(lab, job, source, target, 100 + i))
      return { vmCount, samples }
    } finally {
      await source.close()
      await target.close()
    }
  } finally {
    await lab.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Spawns the CLI; resolves with ms from spawn to the first line whose `kind` is `vm-start`, and the exit code. */
function timeToFirstVm(args, env) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    // XEN_CR_BENCH_CLI_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the measured runs.
    const nodeArgs = (process.env['XEN_CR_BENCH_CLI_NODE_ARGS'] ?? '').split(' ').filter(a => a !== '')
    const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    let firstVmMs
    child.stdout.on('data', chunk => {
      out += chunk.toString()
      if (firstVmMs === undefined && /"kind":"vm-start"/.test(out)) firstVmMs = performance.now() - t0
    })
    child.stderr.on('data', chunk => (err += chunk.toString()))
    child.on('error', reject)
    child.on('close', code => {
      if (code !== 0 || firstVmMs === undefined)
        return reject(
          new Error(
            `xen-cr ${args.join(' ')} exited ${code} (vm-start seen: ${firstVmMs !== undefined}): ${err.trim()} ${out.slice(-500)}`,
          ),
        )
      resolve({ firstVmMs, totalMs: performance.now() - t0 })
    })
  })
}

function runCli(args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    child.stderr.on('data', chunk => (err += chunk.toString()))
    child.stdout.resume()
    child.on('error', reject)
    child.on('close', code => (code === 0 ? resolve() : reject(new Error(`xen-cr ${args.join(' ')}: ${code} ${err}`))))
  })
}

async function fixedCost() {
  const jobId = makeJob([], '').id
  const dir = mkdtempSync(join(tmpdir(), 'xen-cr-bench-start-'))
  const lab = await startLabProcess(dir, spec(10), [['src', 'vm-0000']])
  try {
    const target = await connect(lab.pool('tgt'))
    const sr = await targetSr(target)
    await target.close()
    const env = { ...process.env, XDG_CONFIG_HOME: join(dir, 'home'), NO_COLOR: '1' }
    const base = ['--config', lab.configPath, '--jobs-file', join(dir, 'jobs.json')]
    await runCli(
      [
        ...base,
        'job',
        'create',
        '--name',
        'bench',
        '--source',
        'src',
        '--target',
        'tgt',
        '--sr',
        sr,
        '--vm',
        lab.vms['src/vm-0000'].uuid,
        '--interval',
        '1h',
        '--id',
        jobId,
      ],
      env,
    )
    await runCli([...base, 'run', 'bench', '--json'], env) // the full pass, not measured
    const samples = []
    for (let i = 0; i < runs; i++) {
      await lab.touch('src', lab.vms['src/vm-0000'].uuid, 200 + i)
      const t0 = performance.now()
      const client = await connect(lab.pool('src'))
      const loginMs = performance.now() - t0
      await ageLeases(client, [lab.vms['src/vm-0000'].uuid], jobId)
      await client.close()
      samples.push({ ...(await timeToFirstVm([...base, '--json', 'run', 'bench'], env)), loginMs })
    }
    return samples
  } finally {
    await lab.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

const loadBefore = loadavg()[0]
const callRows = []
for (const size of poolSizes) {
  log(`control-plane: one-VM delta passes in a ${size}-VM source pool…`)
  callRows.push(await passCalls(size))
}
log('control-plane: time to the first VM of `xen-cr run`…')
const start = await fixedCost()

const summary = callRows.map(({ vmCount, samples }) => {
  const split = samples.map(s => ({ src: splitCalls(s.src), tgt: splitCalls(s.tgt) }))
  return {
    poolVms: vmCount,
    calls: stats(split.map(s => s.src.calls + s.tgt.calls)),
    reads: stats(split.map(s => s.src.reads + s.tgt.reads)),
    otherCalls: stats(split.map(s => s.src.other + s.tgt.other)),
    taskWatchCalls: stats(split.map(s => s.src.taskWatch + s.tgt.taskWatch)),
    bytesAnswered: stats(split.map(s => s.src.bytes + s.tgt.bytes)),
    readBytes: stats(split.map(s => s.src.readBytes + s.tgt.readBytes)),
    wallS: stats(samples.map(s => s.wallS)),
    clientCpuS: stats(samples.map(s => s.clientCpuS)),
    labCpuS: stats(samples.map(s => s.labCpuS)),
    byMethod: Object.fromEntries(byMethod(samples.at(-1))),
  }
})
// Wall times mean little on a machine that is busy with other work: the load average says how busy it was.
const load = { before: loadBefore, after: loadavg()[0] }
const startRow = {
  firstVmMs: stats(start.map(s => s.firstVmMs)),
  passMs: stats(start.map(s => s.totalMs)),
  loginMs: stats(start.map(s => s.loginMs)),
}

if (jsonOutput) {
  console.log(
    JSON.stringify({
      bench: 'control-plane',
      cores: coreCount,
      node: process.version,
      runs,
      passes: summary,
      load,
      start: startRow,
    }),
  )
} else {
  console.log(
    `control plane of a one-VM, one-disk delta pass; ${runs} runs, ${coreCount} cores, node ${process.version}; ` +
      `load average ${load.before.toFixed(1)} before, ${load.after.toFixed(1)} after`,
  )
  console.log(
    `${'source VMs  calls: reads + other (task watching)'.padEnd(56)}${'bytes answered (reads)'.padEnd(30)}wall s  client CPU s  lab CPU s`,
  )
  for (const r of summary) {
    const calls = `${r.calls.median}: ${r.reads.median} + ${r.otherCalls.median} (${r.taskWatchCalls.median}) [${r.calls.min}–${r.calls.max}]`
    const bytes = `${(r.bytesAnswered.median / 1024).toFixed(1)} KiB (${(r.readBytes.median / 1024).toFixed(1)} KiB)`
    console.log(
      `${String(r.poolVms).padStart(10)}  ${calls.padEnd(44)}${bytes.padEnd(30)}${r.wallS.median.toFixed(2).padStart(6)}` +
        `${r.clientCpuS.median.toFixed(2).padStart(14)}${r.labCpuS.median.toFixed(2).padStart(11)}`,
    )
  }
  const big = summary.at(-1)
  console.log(`calls per method, ${big.poolVms}-VM pool, last run (pool, method: calls, answer bytes; * = read):`)
  for (const [key, row] of Object.entries(big.byMethod))
    console.log(
      `  ${isRead(key.split(' ')[1]) ? '*' : ' '} ${key.padEnd(44)} ${String(row.calls).padStart(4)}  ${String(row.bytes).padStart(9)}`,
    )
  if (summary.length >= 2) {
    const [a, b] = [summary[0], summary.at(-1)]
    console.log(
      `bytes read per pass, ${b.poolVms} ÷ ${a.poolVms} VMs: ${(b.readBytes.median / a.readBytes.median).toFixed(2)}; ` +
        `calls ${b.calls.median} vs ${a.calls.median}`,
    )
  }
  console.log(
    `xen-cr run, process start → first vm-start: ${fmt(startRow.firstVmMs, 0, ' ms')}; one login: ${fmt(startRow.loginMs, 0, ' ms')}; whole run ${fmt(startRow.passMs, 0, ' ms')}`,
  )
}
