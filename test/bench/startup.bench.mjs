/**
 * Benchmark (run by `npm run bench`, not `npm test`): CPU time of starting the CLI. A command
 * must load only what it uses, so `xen-cr --help` and `xen-cr job list` (which never talk to a
 * pool) should cost little more than node itself. Each command runs ≥ 5 times in a fresh child
 * process; the child's own total CPU (user + system, every thread, as getrusage reports it) is
 * read at its exit through a preloaded `--import` hook, so the parent's work does not count.
 * Runs alternate between the commands (A B C A B C …) so load on the shared machine hits all of
 * them alike. Printed: min / median / max in ms per command and each median ÷ bare node's.
 *
 * Usage, after `npm run build`: `node test/bench/startup.bench.mjs [--runs N] [--json]`.
 * No pass/fail here: timings belong to the benchmark, and `npm test` asserts the deterministic
 * part (which modules load: test/integration/cli-startup.test.ts).
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const BIN = fileURLToPath(new URL('../../bin/xen-cr.js', import.meta.url))
const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))
if (!existsSync(MAIN)) {
  console.error(`${MAIN} is missing: run \`npm run build\` first`)
  process.exit(2)
}

const args = process.argv.slice(2)
const json = args.includes('--json')
const runsAt = args.indexOf('--runs')
const runs = Math.max(5, runsAt >= 0 ? Number(args[runsAt + 1]) : 7)

/** Writes the process's total CPU time at exit to the file named by XEN_CR_BENCH_CPU_FILE. */
const CPU_HOOK =
  'data:text/javascript,' +
  encodeURIComponent(
    "import { writeFileSync } from 'node:fs';" +
      "process.on('exit', () => { const u = process.cpuUsage();" +
      ' writeFileSync(process.env.XEN_CR_BENCH_CPU_FILE, String((u.user + u.system) / 1000)) })',
  )

const home = mkdtempSync(join(tmpdir(), 'xen-cr-startup-bench-'))
// An empty config home and cwd: no config file is discovered and `job list` reads an absent store.
const env = {
  ...process.env,
  XDG_CONFIG_HOME: join(home, 'config'),
  NO_COLOR: '1',
  XEN_CR_BENCH_CPU_FILE: join(home, 'cpu'),
}
delete env.XEN_CR_CONFIG

const cases = [
  { name: 'node -e 0', argv: ['-e', '0'] },
  { name: 'xen-cr --help', argv: [BIN, '--help'] },
  { name: 'xen-cr job list', argv: [BIN, 'job', 'list'] },
]

/** @returns {number} CPU ms of one child */
function measure(argv) {
  rmSync(env.XEN_CR_BENCH_CPU_FILE, { force: true })
  const child = spawnSync(process.execPath, ['--import', CPU_HOOK, ...argv], { cwd: home, env, encoding: 'utf8' })
  if (child.status !== 0) {
    throw new Error(`${argv.join(' ')} exited with ${child.status}: ${child.stderr.trim()}`)
  }
  return Number(readFileSync(env.XEN_CR_BENCH_CPU_FILE, 'utf8'))
}

const samples = new Map(cases.map(c => [c.name, []]))
try {
  for (const c of cases) measure(c.argv) // warm the file cache; not counted
  for (let i = 0; i < runs; i++) for (const c of cases) samples.get(c.name).push(measure(c.argv))
} finally {
  rmSync(home, { recursive: true, force: true })
}

const stats = values => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  return { min: sorted[0], median, max: sorted.at(-1) }
}
const baseline = stats(samples.get('node -e 0')).median
const rows = cases.map(c => {
  const s = stats(samples.get(c.name))
  return { command: c.name, runs, cpuMs: s, ratioToNode: s.median / baseline }
})

if (json) {
  console.log(JSON.stringify({ bench: 'startup', cores: cpus().length, node: process.version, rows }))
} else {
  const ms = value => `${value.toFixed(0)} ms`.padStart(8)
  console.log(`startup CPU (user + system), ${runs} runs each, ${cpus().length} cores, node ${process.version}`)
  console.log(`${'command'.padEnd(18)}${'min'.padStart(8)}${'median'.padStart(8)}${'max'.padStart(8)}  median ÷ node`)
  for (const row of rows) {
    const { min, median, max } = row.cpuMs
    console.log(`${row.command.padEnd(18)}${ms(min)}${ms(median)}${ms(max)}  ${row.ratioToNode.toFixed(2)}`)
  }
}
