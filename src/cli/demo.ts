/**
 * `npm run demo`: continuous replication end to end on the lab, in one process and a temporary
 * directory. It starts a source pool and a target pool on loopback, creates a job through the
 * real CLI, runs a full pass, changes a few guest blocks through the lab control API, runs a
 * delta pass (only the changed 2 MiB blocks travel) and prints `xen-cr list`.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { startLab } from '../lab/start.js'
import type { CliIo } from './context.js'
import { run } from './program.js'

export interface DemoOptions {
  readonly stdout?: CliIo['stdout']
  readonly stderr?: CliIo['stderr']
  readonly signal?: AbortSignal
  /** keep the lab directory afterwards (it is printed) */
  readonly keep?: boolean
}

/** Runs the demo; resolves to the exit code of the first step that failed, else 0. */
export async function runDemo(options: DemoOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout
  const stderr = options.stderr ?? process.stderr
  const say = (line: string): void => void stdout.write(`\n==> ${line}\n`)
  const dir = await mkdtemp(join(tmpdir(), 'xen-cr-demo-'))
  const lab = await startLab({ dir })
  try {
    say(`lab: ${lab.pools.map(p => `pool ${p.name} at ${p.url}`).join(', ')}`)
    const io: Partial<CliIo> = {
      stdout,
      stderr,
      cwd: dir,
      env: { ...process.env, XDG_CONFIG_HOME: dir },
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    }
    // The demo's clock jumps an hour between passes, as a 1h schedule would have it, so replica
    // names and ages differ; otherwise it runs at the real pace.
    let skew = 0
    const now = (): Date => new Date(Date.now() + skew)
    const cli = async (args: string[]): Promise<number> => {
      say(`xen-cr ${args.join(' ')}`)
      return run(['--config', lab.configPath, ...args], { ...io, now })
    }
    const steps: (() => Promise<number>)[] = [
      () =>
        cli([
          'job',
          'create',
          '--name',
          'demo',
          '--source',
          'source',
          '--target',
          'target',
          '--tag',
          'web',
          '--tag',
          'db',
          '--interval',
          '1h',
          '--retention',
          '3',
        ]),
      () => cli(['run', 'demo']),
      async () => {
        skew += 3_600_000
        const web = lab.control.findVm('source', 'web-01')
        const db = lab.control.findVm('source', 'db-01')
        if (web === undefined || db === undefined) throw new Error('the default lab spec has no web-01/db-01')
        say('guests write: web-01 blocks 0 and 5 of its first disk, db-01 block 3 of its first disk (3 × 2 MiB)')
        await lab.control.writeGuestData('source', web.uuid, { blocks: [0, 5], seed: Date.now() % 1000 })
        await lab.control.writeGuestData('source', db.uuid, { blocks: [3], seed: 7 })
        return 0
      },
      () => cli(['run', 'demo']),
      () => cli(['list', 'demo']),
    ]
    for (const step of steps) {
      const code = await step()
      if (code !== 0) return code
    }
    return 0
  } finally {
    await lab.stop()
    if (options.keep === true) say(`lab state kept in ${dir}`)
    else await rm(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const controller = new AbortController()
  process.once('SIGINT', () => controller.abort())
  process.exitCode = await runDemo({ signal: controller.signal, keep: process.argv.includes('--keep') })
}
