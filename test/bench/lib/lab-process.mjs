/**
 * Shared by the data-path benchmarks: a lab in a child process ({@link startLabProcess}), its
 * CPU seconds, a child that runs one measured transfer ({@link runChild}), and statistics.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'

export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

const LAB_CHILD = fileURLToPath(new URL('./lab.child.mjs', import.meta.url))
const TRANSFER_CHILD = fileURLToPath(new URL('./transfer.child.mjs', import.meta.url))
const DIST = fileURLToPath(new URL('../../../dist/lab/start.js', import.meta.url))

/** Exits 2 with a hint when the build is missing. */
export function requireBuild() {
  if (!existsSync(DIST)) {
    console.error(`${DIST} is missing: run \`npm run build\` first`)
    process.exit(2)
  }
}

/** A size from the environment (`"2 GiB"`, `"512 MiB"`, bytes), else `fallback`. */
export function envSize(name, fallback) {
  const text = process.env[name]
  if (text === undefined || text === '') return fallback
  const match = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB)?\s*$/i.exec(text)
  if (match === null) throw new Error(`${name}=${text} is not a size (e.g. "512 MiB")`)
  const unit = { b: 1, kib: 1024, mib: MiB, gib: GiB, tib: 1024 * GiB }[(match[2] ?? 'b').toLowerCase()]
  return Math.round(Number(match[1]) * unit)
}

export function envInt(name, fallback) {
  const text = process.env[name]
  if (text === undefined || text === '') return fallback
  const value = Number(text)
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name}=${text} is not a positive whole number`)
  return value
}

/** `--runs N` (at least 3), else XEN_CR_BENCH_RUNS, else `fallback`. */
export function repetitions(fallback = 3) {
  const at = process.argv.indexOf('--runs')
  const asked = at >= 0 ? Number(process.argv[at + 1]) : envInt('XEN_CR_BENCH_RUNS', fallback)
  return Math.max(3, asked)
}

export const jsonOutput = process.argv.includes('--json')
export const coreCount = cpus().length

/** A size for people: `1.50 GiB`, `256 MiB`. */
export function size(bytes) {
  return bytes >= GiB ? `${(bytes / GiB).toFixed(2)} GiB` : `${(bytes / MiB).toFixed(1)} MiB`
}

const TICKS = 100 // USER_HZ on Linux

/** CPU seconds (user + system) of a process so far, from /proc. */
export function cpuSecondsOf(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICKS
}

/**
 * Starts `script` (a lab child) with `env` and `nodeArgs`; resolves once it printed its first
 * line, with that line's JSON plus `pid`, `cpuSeconds()` and `stop()` (closing its stdin).
 */
export function spawnLabChild(script, env, nodeArgs = []) {
  const child = spawn(process.execPath, [...nodeArgs, script], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  return new Promise((resolve, reject) => {
    let out = ''
    const onData = chunk => {
      out += chunk.toString()
      const newline = out.indexOf('\n')
      if (newline < 0) return
      child.stdout.off('data', onData)
      resolve({
        ...JSON.parse(out.slice(0, newline)),
        pid: child.pid,
        cpuSeconds: () => cpuSecondsOf(child.pid),
        stop: () =>
          new Promise(done => {
            child.once('exit', done)
            child.stdin.end()
          }),
      })
    }
    child.stdout.on('data', onData)
    child.once('error', reject)
    child.once('exit', code => reject(new Error(`lab child exited with ${code} before it listened`)))
  })
}

/**
 * Starts a lab in a child process; resolves once it listens, with its pools, the VDI uuids of
 * every VM (`vms['pool/vm']`), `cpuSeconds()` and `stop()`.
 */
export function startLabProcess(dir, spec) {
  return spawnLabChild(LAB_CHILD, { XEN_CR_BENCH_LAB: JSON.stringify({ dir, spec }) })
}

/**
 * Runs one measured job in a fresh child (test/bench/lib/transfer.child.mjs); resolves with its
 * JSON result plus `labCpuS`, the lab's CPU seconds over the same time.
 */
export function runChild(job, lab, nodeArgs = []) {
  return new Promise((resolve, reject) => {
    const labBefore = lab.cpuSeconds()
    const child = spawn(process.execPath, [...nodeArgs, TRANSFER_CHILD], {
      env: { ...process.env, XEN_CR_BENCH_JOB: JSON.stringify(job) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', chunk => (out += chunk.toString()))
    child.stderr.on('data', chunk => (err += chunk.toString()))
    child.on('error', reject)
    child.on('close', code => {
      if (code !== 0) return reject(new Error(`${job.mode} child exited with ${code}: ${err.trim()}`))
      const result = JSON.parse(out.trim().split('\n').at(-1) ?? '{}')
      resolve({ ...result, labCpuS: lab.cpuSeconds() - labBefore })
    })
  })
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
