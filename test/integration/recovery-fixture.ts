/**
 * Shared set-up for the recovery integration tests: a source pool with two VMs (web: two disks,
 * db: one) on one network, a target pool with one SR and two networks, a job replicating both
 * VMs created through the CLI, and helpers to run the CLI in-process, read its NDJSON and count
 * objects. Not a test file itself.
 */
import { writeFile, readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import { expect } from 'vitest'
import { run } from '../../src/cli/program.js'
import type { LabSpec } from '../../src/lab/spec.js'
import { KEYS } from '../../src/replication/metadata.js'
import type { XapiClient } from '../../src/xapi/client.js'
import type { Ref, VmRecord } from '../../src/xapi/types.js'
import { disksOf, rawSha256, startFixture, type Fixture } from './replication-fixture.js'

export const NETWORK = 'Pool-wide network associated with eth0'
export const DR_NETWORK = 'DR LAN'
export const HOUR = 3_600_000

export const SPEC: LabSpec = {
  pools: [
    {
      name: 'src',
      srs: [{ name: 'Local storage' }],
      networks: [{ name: NETWORK }],
      vms: [
        {
          name: 'web',
          powerState: 'Running',
          disks: [
            { name: 'web root', size: '16 MiB', filled: '8 MiB', seed: 1 },
            { name: 'web data', size: '8 MiB', filled: '2 MiB', seed: 2 },
          ],
          networks: [NETWORK],
        },
        {
          name: 'db',
          powerState: 'Running',
          disks: [{ name: 'db data', size: '8 MiB', filled: '4 MiB', seed: 5 }],
          networks: [NETWORK],
        },
      ],
    },
    {
      name: 'tgt',
      srs: [{ name: 'Replica A' }],
      networks: [{ name: NETWORK }, { name: DR_NETWORK }],
    },
  ],
}

export interface RecoveryFixture extends Fixture {
  readonly dbUuid: string
  readonly dbRef: Ref<'VM'>
  /** the CLI against this lab, at `now` (default the real clock) */
  cli(args: readonly string[], options?: CliOptions): Promise<CliOutcome>
}

export interface CliOptions {
  readonly now?: Date
  /** another config file (e.g. with the source pool unreachable) */
  readonly config?: string
  /** a fake terminal that answers this line */
  readonly answer?: string
}

export interface CliOutcome {
  readonly code: number
  readonly out: string
  readonly err: string
}

export type Event = { readonly kind: string } & Record<string, unknown>

/** The NDJSON events of a `--json` run. */
export function events(out: string): Event[] {
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map(line => JSON.parse(line) as Event)
}

/** The one event of this kind, typed as the test expects it. */
export function eventOf<T>(out: string, kind: string): T {
  const found = events(out).filter(e => e.kind === kind)
  expect(found, `one ${kind} event in ${out}`).toHaveLength(1)
  return found[0] as unknown as T
}

function sink(append: (text: string) => void): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      append(chunk.toString())
      callback()
    },
  })
}

/** A terminal that types `answer` and Enter once the question is asked. */
function fakeTerminal(answer: string): PassThrough & { isTTY: true; isRaw: boolean; setRawMode(mode: boolean): void } {
  const input = Object.assign(new PassThrough(), {
    isTTY: true as const,
    isRaw: false,
    setRawMode(mode: boolean) {
      input.isRaw = mode
    },
  })
  input.write(`${answer}\r`)
  return input
}

/** Starts the lab and creates job "nightly" (both VMs, retention 2) through the CLI. */
export async function startRecoveryFixture(retention = 2): Promise<RecoveryFixture> {
  const f = await startFixture(SPEC)
  const [dbRef, db] = [...(await f.source.getAllRecords('VM'))].find(([, v]) => v.name_label === 'db')!
  const cli = async (args: readonly string[], options: CliOptions = {}): Promise<CliOutcome> => {
    let out = ''
    let err = ''
    const now = options.now
    const code = await run(['--config', options.config ?? f.lab.configPath, ...args], {
      stdout: sink(s => (out += s)),
      stderr: sink(s => (err += s)),
      env: { HOME: f.lab.dir, XDG_CONFIG_HOME: f.lab.dir },
      cwd: f.lab.dir,
      ...(now === undefined ? {} : { now: () => now }),
      ...(options.answer === undefined ? {} : { stdin: fakeTerminal(options.answer) }),
    })
    return { code, out, err }
  }
  const fx: RecoveryFixture = { ...f, dbUuid: db.uuid, dbRef, cli }
  const created = await cli([
    'job',
    'create',
    '--name',
    'nightly',
    '--source',
    'src',
    '--target',
    'tgt',
    '--sr',
    f.srs['Replica A']!,
    '--vm',
    f.vmUuid,
    db.uuid,
    '--interval',
    '1h',
    '--retention',
    String(retention),
  ])
  expect(created.err).toBe('')
  expect(created.code).toBe(0)
  return fx
}

/** One pass of the job through the CLI at `now`; asserts every VM succeeded in `mode`. */
export async function pass(f: RecoveryFixture, now: Date, mode: 'full' | 'delta', vms?: string[]): Promise<void> {
  const result = await f.cli(['--json', 'run', 'nightly', ...(vms === undefined ? [] : ['--vm', ...vms])], { now })
  expect(result.err).toBe('')
  expect(result.code).toBe(0)
  const done = events(result.out).filter(e => e.kind === 'vm-done') as unknown as {
    result: { status: string; mode: string }
  }[]
  expect(done.map(e => [e.result.status, e.result.mode])).toEqual(done.map(() => ['success', mode]))
}

/** A config file beside the lab's in which the source pool is a loopback port nobody listens on. */
export async function configWithSourceDown(f: Fixture): Promise<string> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>(resolve => server.close(() => resolve()))
  const config = JSON.parse(await readFile(f.lab.configPath, 'utf8')) as { pools: Record<string, { url: string }> }
  config.pools['src']!.url = `http://127.0.0.1:${port}`
  const path = join(f.lab.dir, 'source-down.config.json')
  await writeFile(path, JSON.stringify(config))
  return path
}

/** Non-snapshot, non-template VMs (and their refs) of a pool, dom0 excluded. */
export async function plainVms(client: XapiClient): Promise<Map<Ref<'VM'>, VmRecord>> {
  const out = new Map<Ref<'VM'>, VmRecord>()
  for (const [ref, vm] of await client.getAllRecords('VM'))
    if (!vm.is_a_snapshot && !vm.is_a_template && !vm.is_control_domain) out.set(ref, vm)
  return out
}

/** How many VMs (all kinds but dom0) and VDIs a pool holds: what a refusal must leave as it was. */
export async function counts(client: XapiClient): Promise<{ vms: number; vdis: number }> {
  const [vms, vdis] = await Promise.all([client.getAllRecords('VM'), client.getAllRecords('VDI')])
  // managed disks only: the SR's hidden base copies come and go with its chains, as on a real VHD SR
  return {
    vms: [...vms.values()].filter(v => !v.is_control_domain).length,
    vdis: [...vdis.values()].filter(v => v.managed).length,
  }
}

/** The job's replicas of one source VM on the target, oldest first. */
export async function replicasOf(f: Fixture, vmUuid: string): Promise<[Ref<'VM'>, VmRecord][]> {
  return [...(await f.target.getAllRecords('VM'))]
    .filter(([, v]) => !v.is_a_snapshot && v.other_config[KEYS.vm] === vmUuid && v.other_config[KEYS.job] !== undefined)
    .sort(([, a], [, b]) => (a.other_config[KEYS.datetime] ?? '').localeCompare(b.other_config[KEYS.datetime] ?? ''))
}

/** sha256 of each disk of a VM, in userdevice order. */
export async function diskHashes(client: XapiClient, vm: Ref<'VM'>): Promise<string[]> {
  return Promise.all((await disksOf(client, vm)).map(d => rawSha256(client, d)))
}

/**
 * Everything about a replica a failover must not change: the VM's fields that protect and
 * identify it, and each disk's keys and bytes.
 */
export async function replicaState(client: XapiClient, vm: Ref<'VM'>): Promise<unknown> {
  const r = await client.getRecord('VM', vm)
  const disks = await disksOf(client, vm)
  return {
    vm: {
      name_label: r.name_label,
      power_state: r.power_state,
      other_config: r.other_config,
      blocked_operations: r.blocked_operations,
      tags: r.tags,
      ha_restart_priority: r.ha_restart_priority,
      ha_always_run: r.ha_always_run,
      VBDs: r.VBDs,
      VIFs: r.VIFs,
    },
    disks: await Promise.all(
      disks.map(async d => {
        const vdi = await client.getRecord('VDI', d)
        return {
          uuid: vdi.uuid,
          other_config: vdi.other_config,
          name_label: vdi.name_label,
          sha: await rawSha256(client, d),
        }
      }),
    ),
  }
}
