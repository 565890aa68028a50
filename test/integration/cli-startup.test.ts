/**
 * Fast start (issue 11): a command loads only what it uses. The built binary runs with a module
 * resolve hook (`node --import`) that records every URL it resolves; commands that never reach a
 * pool must not load the XAPI client or its dependencies (xen-api, undici, lodash, proxy-agent),
 * nor the lab, nor the packages only some commands draw with (cli-table3, cli-progress, cron-parser
 * and its luxon); cosmiconfig loads only when a config file is read. Which modules load is
 * deterministic, so this belongs in `npm test`; the time it saves is measured by
 * `test/bench/startup.bench.mjs`.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { buildJob } from '../../src/jobs/build-job.js'
import { JobStore } from '../../src/jobs/job-store.js'
import { builtBinary } from '../helpers/built.js'
import { makeTempDir } from '../helpers/tmp.js'

const BIN = builtBinary()
const ROOT = pathToFileURL(fileURLToPath(new URL('../../', import.meta.url))).href
const EXAMPLE_CONFIG = fileURLToPath(new URL('../../examples/xen-cr.config.json', import.meta.url))

/** Runs in the loader thread: appends each resolved URL to the file the register script names. */
const HOOKS = `import { appendFileSync } from 'node:fs'
let file
export function initialize(data) { file = data.file }
export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context)
  appendFileSync(file, result.url + '\\n')
  return result
}
`

const FORBIDDEN = [
  'node_modules/xen-api/',
  'node_modules/undici/',
  'node_modules/lodash/',
  'node_modules/proxy-agent/',
  'dist/lab/',
  'dist/xapi/client.js',
  'node_modules/cli-table3/',
  'node_modules/cli-progress/',
  'node_modules/cron-parser/',
  'node_modules/luxon/',
]
/** Loaded by the commands here that read the config file (`job show` does, for its crontab line). */
const CONFIG_READER = 'node_modules/cosmiconfig/'

let tmp: { path: string; remove: () => Promise<void> }
beforeEach(async () => {
  tmp = await makeTempDir()
  await writeFile(join(tmp.path, 'hooks.mjs'), HOOKS)
  await writeFile(
    join(tmp.path, 'register.mjs'),
    `import { register } from 'node:module'
register(${JSON.stringify(pathToFileURL(join(tmp.path, 'hooks.mjs')).href)}, { data: { file: ${JSON.stringify(join(tmp.path, 'loaded.txt'))} } })
`,
  )
})
afterEach(async () => {
  await tmp.remove()
})

/** A job store holding one job, so that `job list` and `job show` have something to print. */
async function storeWithJob(): Promise<string> {
  const store = new JobStore(join(tmp.path, 'jobs.json'))
  const defaults = { retention: 1, concurrency: 2, fullInterval: 0 }
  await store.add(
    buildJob({ name: 'nightly', source: 'prod', target: 'dr', allVms: true, interval: '1h' }, defaults, new Date()),
  )
  return store.file
}

/** The package's own modules and dependencies the binary resolved for `args`, relative to the package root. */
async function loadedBy(args: string[]): Promise<{ stdout: string; loaded: string[] }> {
  const child = spawn(
    process.execPath,
    ['--import', pathToFileURL(join(tmp.path, 'register.mjs')).href, BIN, ...args],
    {
      cwd: tmp.path,
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        HOME: tmp.path,
        XDG_CONFIG_HOME: join(tmp.path, 'config'),
        NO_COLOR: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  if (code !== 0) throw new Error(`xen-cr ${args.join(' ')} exited with ${code}: ${stderr}`)
  return { stdout, loaded: await recorded() }
}

/** What the hook recorded under the package root, relative to it, each once. */
async function recorded(): Promise<string[]> {
  const urls = (await readFile(join(tmp.path, 'loaded.txt'), 'utf8')).split('\n')
  return [...new Set(urls.filter(url => url.startsWith(ROOT)).map(url => url.slice(ROOT.length)))]
}

function forbidden(loaded: string[], readsConfig = true): string[] {
  const prefixes = readsConfig ? FORBIDDEN : [...FORBIDDEN, CONFIG_READER]
  return loaded.filter(path => prefixes.some(prefix => path.includes(prefix)))
}

describe('commands that never reach a pool start without the XAPI client or the lab', () => {
  it.each([
    ['--help', ['--help'], 'Usage: xen-cr', false],
    ['job list', ['job', 'list'], 'nightly', false],
    ['job show', ['job', 'show', 'nightly'], 'nightly', true],
    ['completion bash', ['completion', 'bash'], 'complete', false],
    ['config show', ['config', 'show'], 'prod', true],
  ])('%s', async (_name, args, expected, readsConfig) => {
    const jobsFile = await storeWithJob()
    const { stdout, loaded } = await loadedBy(['--config', EXAMPLE_CONFIG, '--jobs-file', jobsFile, ...args])
    expect(stdout).toContain(expected)
    // the hook sees the binary's own modules, so an empty list would mean it recorded nothing
    expect(loaded).toContain('dist/cli/main.js')
    expect(forbidden(loaded, readsConfig)).toEqual([])
    // and the one that reads a file does load cosmiconfig: the hook sees it
    expect(loaded.some(path => path.startsWith(CONFIG_READER))).toBe(readsConfig)
  })

  it('the hook does see the client and the lab when they load (the check above can fail)', async () => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        pathToFileURL(join(tmp.path, 'register.mjs')).href,
        '--input-type=module',
        '-e',
        `await import(${JSON.stringify(new URL('dist/xapi/client.js', ROOT).href)}); await import(${JSON.stringify(new URL('dist/lab/start.js', ROOT).href)})`,
      ],
      { cwd: tmp.path, stdio: 'ignore' },
    )
    const [code] = (await once(child, 'exit')) as [number | null]
    expect(code).toBe(0)
    expect(forbidden(await recorded())).toEqual(
      expect.arrayContaining([
        'dist/xapi/client.js',
        expect.stringMatching(/^node_modules\/xen-api\//),
        expect.stringMatching(/^dist\/lab\//),
      ]),
    )
  })
})
