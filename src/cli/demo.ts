/**
 * `npm run demo`: continuous replication end to end on the lab, in one process and a temporary
 * directory. It starts a source pool and a target pool on loopback, creates a job through the
 * real CLI, runs a full pass, changes a few guest blocks through the lab control API, runs a
 * delta pass (only the changed 2 MiB blocks travel) and prints `xen-cr list`.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pathToFileURL } from 'node:url'
import { startLab, type LabPoolInfo } from '../lab/start.js'
import { XapiClient } from '../xapi/client.js'
import type { CliIo } from './context.js'
import { run } from './program.js'

export interface DemoOptions {
  readonly stdout?: CliIo['stdout']
  readonly stderr?: CliIo['stderr']
  readonly signal?: AbortSignal
  /** keep the lab directory afterwards (it is printed) */
  readonly keep?: boolean
}

/** The demo's schedule: the first pass is dated this long before the second. */
const INTERVAL_MS = 3_600_000

/**
 * `stream` without the lines that start with `prefix`. The lab and its job store live in a
 * temporary folder that the demo removes: a crontab line naming them would be a trap.
 */
function withoutLines(stream: CliIo['stdout'], prefix: string): CliIo['stdout'] {
  const filtered = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      const text = chunk.toString()
      const kept = text
        .split(/(?<=\n)/)
        .filter(line => !line.startsWith(prefix))
        .join('')
      // at once, not on the inner write's callback: the next step's lines must not overtake these
      if (kept !== '') stream.write(kept)
      callback()
    },
  })
  return Object.assign(filtered, {
    isTTY: stream.isTTY === true,
    ...(stream.columns === undefined ? {} : { columns: stream.columns }),
  })
}

/** The uuid of the network named `name` on a lab pool (the demo maps one network by uuid). */
async function networkUuid(pool: LabPoolInfo, name: string, signal: AbortSignal | undefined): Promise<string> {
  const client = await XapiClient.connect({
    url: pool.url,
    user: pool.user,
    password: pool.password,
    ...(signal === undefined ? {} : { signal }),
  })
  try {
    for (const network of (await client.getAllRecords('network')).values())
      if (network.name_label === name) return network.uuid
    throw new Error(`the demo lab's pool ${pool.name} has no network "${name}"`)
  } finally {
    await client.close()
  }
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
    const [source, target] = lab.pools
    if (source === undefined || target === undefined) throw new Error('the default lab spec has two pools')
    const io: Partial<CliIo> = {
      stdout,
      stderr,
      cwd: dir,
      env: { ...process.env, XDG_CONFIG_HOME: dir },
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    }
    // Two passes an hour apart, as the 1h schedule would run them, so replica names and ages
    // differ: the first is dated an hour ago, the second now — a log never shows the future.
    let skew = -INTERVAL_MS
    const now = (): Date => new Date(Date.now() + skew)
    const cli = async (args: string[], out: CliIo['stdout'] = stdout): Promise<number> => {
      say(`xen-cr ${args.join(' ')}`)
      return run(['--config', lab.configPath, ...args], { ...io, stdout: out, now })
    }
    const vlan = await networkUuid(source, 'VLAN 42', options.signal)
    const eth0 = await networkUuid(target, 'Pool-wide network associated with eth0', options.signal)
    const steps: (() => Promise<number>)[] = [
      async () => {
        say(
          "db-01 has a VIF on VLAN 42, which the target pool lacks: the job maps it onto the target's eth0 network (without --network-map, every pass would warn NETWORK_MAPPED_TO_DEFAULT)",
        )
        const code = await cli(
          [
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
            '--network-map',
            `${vlan}=${eth0}`,
          ],
          options.keep === true ? stdout : withoutLines(stdout, 'crontab: '),
        )
        if (options.keep !== true)
          say(
            `no crontab line: this job store lives in ${dir}, which the demo removes on exit; for a real one, \`xen-cr job show <job>\` prints the line to install`,
          )
        return code
      },
      () => {
        say('the first pass, dated an hour ago as if the schedule had run it then')
        return cli(['run', 'demo'])
      },
      async () => {
        skew = 0
        const web = lab.control.findVm('source', 'web-01')
        const db = lab.control.findVm('source', 'db-01')
        if (web === undefined || db === undefined) throw new Error('the default lab spec has no web-01/db-01')
        say('guests write: web-01 blocks 0 and 5 of its first disk, db-01 block 3 of its first disk (3 × 2 MiB)')
        await lab.control.writeGuestData('source', web.uuid, { blocks: [0, 5], seed: Date.now() % 1000 })
        await lab.control.writeGuestData('source', db.uuid, { blocks: [3], seed: 7 })
        return 0
      },
      async () => {
        const code = await cli(['run', 'demo'])
        say(
          "db-01's data disk was not written: its delta holds no block, only the VHD's header and block table (a few KiB), which is how the target learns that nothing changed",
        )
        return code
      },
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
