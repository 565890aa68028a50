/**
 * `npm run bench` (after `npm run build`): every `*.bench.mjs` of this folder, one after the
 * other in a child process each (so one benchmark's heap and open sockets never weigh on the
 * next), in name order. Arguments are passed on to each benchmark.
 *
 * With `--json`: one JSON object per line and benchmark: the benchmark's own last line when it is
 * a JSON object (a benchmark that speaks `--json` prints one), else
 * `{"bench": name, "exitCode": n, "output": text}` with what it printed. Exits with the first
 * non-zero exit code of a benchmark, after running them all.
 */
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const DIR = fileURLToPath(new URL('.', import.meta.url))
const args = process.argv.slice(2)
const json = args.includes('--json')
const benches = readdirSync(DIR)
  .filter(name => name.endsWith('.bench.mjs'))
  .sort()

let exitCode = 0
for (const name of benches) {
  const child = spawnSync(process.execPath, [join(DIR, name), ...args], {
    stdio: json ? ['ignore', 'pipe', 'inherit'] : 'inherit',
    encoding: 'utf8',
  })
  const status = child.status ?? 1
  if (exitCode === 0 && status !== 0) exitCode = status
  if (!json) {
    if (status !== 0) console.error(`${name} exited with ${status}`)
    continue
  }
  const output = child.stdout ?? ''
  const last = output.trim().split('\n').at(-1) ?? ''
  let parsed
  try {
    parsed = JSON.parse(last)
  } catch {
    parsed = undefined
  }
  const own = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
  console.log(JSON.stringify(own ? parsed : { bench: name.replace(/\.bench\.mjs$/, ''), exitCode: status, output }))
}
process.exitCode = exitCode
