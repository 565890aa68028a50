/**
 * Several controllers sharing one job (issue 8): each its own machine in all that matters — its
 * own process, HOME and job store holding the same job (same id) — against the same pools.
 * Without leases in XAPI, two controllers started together both replicated every VM (3 replicas
 * against retention 2), and one started a second later failed with `HANDLE_INVALID` because the
 * other had rotated its base away; a lease file from another host blocked the job for 24 h.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Lab } from '../../src/lab/start.js'
import { KEYS, isPlaceholderDatetime, leaseKeyPrefix } from '../../src/replication/metadata.js'
import type { LeaseRecord } from '../../src/replication/vm-lease.js'
import type { XapiClient } from '../../src/xapi/client.js'
import type { Ref } from '../../src/xapi/types.js'
import { builtBinary } from '../helpers/built.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'
import { makeTempDir } from '../helpers/tmp.js'
import { vmLeaseEntries } from '../helpers/vm-lease.js'

const BIN = builtBinary()
const ROUNDS = 20
const CONTROLLERS = 3
const RETENTION = 2
const JOB_ID = '5b0e0f7c-3f43-4a53-9d53-6f6b0a8f3c21'
/** retention is per schedule (as in XO): the stores share the schedule's id as well as the job's */
const SCHEDULE_ID = '0d6b7a2e-8c1f-4e7a-b0a4-2d9f5c3e1a77'

const SPEC = {
  pools: [
    {
      name: 'src',
      srs: [{ name: 'Local storage' }],
      vms: ['web', 'db', 'mail'].map((name, i) => ({
        name,
        disks: [{ name: `${name} root`, size: '4 MiB', filled: '1 MiB', seed: i + 1 }],
      })),
    },
    { name: 'tgt', srs: [{ name: 'Replica' }] },
  ],
}

interface VmDone {
  kind: 'vm-done'
  result: { status: 'success' | 'failed' | 'skipped'; vm: { uuid: string; name: string }; reason?: string }
}

interface Outcome {
  readonly code: number | null
  readonly events: { kind: string }[]
  readonly stderr: string
}

let lab: Lab
let source: XapiClient
let target: XapiClient
let tmp: { path: string; remove: () => Promise<void> }
const vms: { ref: Ref<'VM'>; uuid: string; name: string }[] = []
let srUuid = ''

/** Each controller's home: its own HOME, XDG config dir and job store. */
function home(controller: number): string {
  return join(tmp.path, `controller-${controller}`)
}

function start(controller: number, args: readonly string[]): { child: ChildProcess; done: Promise<Outcome> } {
  const dir = home(controller)
  const child = spawn(
    process.execPath,
    [BIN, '--config', lab.configPath, '--jobs-file', join(dir, 'jobs.json'), '--json', ...args],
    {
      cwd: dir,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, XDG_CONFIG_HOME: join(dir, 'xdg') },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const done = once(child, 'close').then(([code]) => ({
    code: code as number | null,
    stderr,
    events: stdout
      .split('\n')
      .filter(line => line.startsWith('{'))
      .map(line => JSON.parse(line) as { kind: string }),
  }))
  return { child, done }
}

function results(outcome: Outcome): VmDone['result'][] {
  return outcome.events.filter((e): e is VmDone => e.kind === 'vm-done').map(e => e.result)
}

/** Complete replicas of the VM on the target, and those still importing. */
async function replicaCount(vmUuid: string): Promise<{ complete: number; importing: number }> {
  const all = [...(await target.getAllRecords('VM')).values()].filter(
    v => !v.is_a_snapshot && v.other_config[KEYS.job] === JOB_ID && v.other_config[KEYS.vm] === vmUuid,
  )
  const importing = all.filter(v => isPlaceholderDatetime(v.other_config[KEYS.datetime])).length
  return { complete: all.length - importing, importing }
}

beforeAll(async () => {
  lab = await startTempLab(SPEC)
  source = await connectLabPool(labPool(lab, 'src'))
  target = await connectLabPool(labPool(lab, 'tgt'))
  tmp = await makeTempDir('xen-cr-multi-controller-')
  for (const [ref, vm] of await source.getAllRecords('VM'))
    if (!vm.is_control_domain && !vm.is_a_template && !vm.is_a_snapshot)
      vms.push({ ref, uuid: vm.uuid, name: vm.name_label })
  expect(vms).toHaveLength(3)
  srUuid = [...(await target.getAllRecords('SR')).values()].find(sr => sr.name_label === 'Replica')!.uuid
  // the same job (same id) in three separate job stores
  for (let c = 0; c < CONTROLLERS; c++) {
    await mkdir(home(c), { recursive: true })
    const created = await start(c, [
      'job',
      'create',
      '--id',
      JOB_ID,
      '--schedule-id',
      SCHEDULE_ID,
      '--name',
      'shared',
      '--source',
      'src',
      '--target',
      'tgt',
      '--sr',
      srUuid,
      ...vms.flatMap(vm => ['--vm', vm.uuid]),
      '--interval',
      '1h',
      '--retention',
      String(RETENTION),
      '--concurrency',
      '1',
    ]).done
    expect(created.code, created.stderr).toBe(0)
  }
}, 120_000)

afterAll(async () => {
  await source?.close()
  await target?.close()
  await lab?.stop()
  await tmp?.remove()
})

describe('three controllers with separate job stores running the same job at the same moment', () => {
  it(`replicate each VM exactly once per round, ${ROUNDS} rounds, never beyond retention, with no failure`, async () => {
    const perRound: number[][] = []
    for (let round = 0; round < ROUNDS; round++) {
      const outcomes = await Promise.all(
        Array.from({ length: CONTROLLERS }, (_, c) => start(c, ['run', 'shared']).done),
      )
      const all = outcomes.flatMap(results)
      for (const [c, outcome] of outcomes.entries()) {
        // 0: replicated something; 3: every VM was another controller's — never 1
        expect([0, 3], `round ${round} controller ${c}: ${outcome.stderr}`).toContain(outcome.code)
      }
      expect(
        all.filter(r => r.status === 'failed'),
        `round ${round}`,
      ).toEqual([])
      // every controller reports every VM: replicated, or skipped as another's
      expect(all, `round ${round}`).toHaveLength(CONTROLLERS * vms.length)
      const successes = vms.map(vm => all.filter(r => r.vm.uuid === vm.uuid && r.status === 'success').length)
      expect(successes, `round ${round}: replications per VM`).toEqual(vms.map(() => 1))
      perRound.push(outcomes.map(o => results(o).filter(r => r.status === 'success').length))
      for (const vm of vms) {
        const count = await replicaCount(vm.uuid)
        expect(count, `round ${round} ${vm.name}`).toEqual({ complete: Math.min(round + 1, RETENTION), importing: 0 })
      }
    }
    // the leases were all given back: one released entry per VM, nobody holds one
    for (const vm of vms) {
      const entries = [...(await vmLeaseEntries(source, vm.ref, JOB_ID)).values()]
      expect(entries).toHaveLength(1)
      expect(entries[0]?.released).toBe(true)
    }
    // the work was shared: per round, how many VMs each controller replicated (for the report)
    console.info(`multi-controller replications per round per controller: ${JSON.stringify(perRound)}`)
  }, 600_000)
})

describe('a controller killed while it holds a lease', () => {
  it('leaves a lease that another controller takes over once it expires, and replicates the VM', async () => {
    const vm = vms[0]!
    const killed = start(0, ['--verbose', 'run', 'shared', '--vm', vm.uuid, '--lease-time', '3s'])
    // kill -9 once its pass of the VM is under way (lease taken, snapshot being made)
    await new Promise<void>((resolve, reject) => {
      let seen = ''
      killed.child.stdout!.on('data', (chunk: Buffer) => {
        seen += chunk.toString()
        if (seen.includes('"kind":"vm-start"')) resolve()
      })
      killed.child.once('close', () => reject(new Error(`the controller ended before its pass started: ${seen}`)))
    })
    killed.child.kill('SIGKILL')
    await killed.done
    const left = [...(await vmLeaseEntries(source, vm.ref, JOB_ID)).values()].filter(e => e.released !== true)
    expect(left).toHaveLength(1)
    const stale: LeaseRecord = left[0]!
    expect(stale.pid).toBe(killed.child.pid)

    // wait out the dead controller's lease (its expiry is data, read from XAPI), then run again
    await sleep(Math.max(0, Date.parse(stale.expires) - Date.now()) + 200)
    const next = await start(1, ['run', 'shared', '--vm', vm.uuid]).done
    expect(next.code, next.stderr).toBe(0)
    expect(results(next)).toMatchObject([{ status: 'success', vm: { uuid: vm.uuid } }])
    const count = await replicaCount(vm.uuid)
    expect(count.complete).toBeLessThanOrEqual(RETENTION)
    expect(count.importing).toBe(0)
    const entries = [...(await vmLeaseEntries(source, vm.ref, JOB_ID)).entries()]
    expect(entries).toHaveLength(1)
    expect(entries[0]![0].startsWith(leaseKeyPrefix(JOB_ID))).toBe(true)
    expect(entries[0]![1]).toMatchObject({ released: true, last: { host: expect.any(String) as string } })
  }, 120_000)
})

describe('three controllers running run --due at the same moment (a CronJob with parallelism 3)', () => {
  it('replicate each VM of the due job once between them, and find the replicated job not due', async () => {
    const DUE_JOB = '9e41d2c0-6b7a-4f0e-8a55-0c2f4b7d9e13'
    const DUE_SCHEDULE = '9e41d2c0-6b7a-4f0e-8a55-0c2f4b7d9e14'
    for (let c = 0; c < CONTROLLERS; c++) {
      const created = await start(c, [
        'job',
        'create',
        '--id',
        DUE_JOB,
        '--schedule-id',
        DUE_SCHEDULE,
        '--name',
        'due',
        '--source',
        'src',
        '--target',
        'tgt',
        '--sr',
        srUuid,
        ...vms.flatMap(vm => ['--vm', vm.uuid]),
        '--interval',
        '1h',
        '--concurrency',
        '1',
      ]).done
      expect(created.code, created.stderr).toBe(0)
    }
    const outcomes = await Promise.all(Array.from({ length: CONTROLLERS }, (_, c) => start(c, ['run', '--due']).done))
    for (const outcome of outcomes) expect([0, 3], outcome.stderr).toContain(outcome.code)
    const all = outcomes.flatMap(results)
    expect(all.filter(r => r.status === 'failed')).toEqual([])
    // only the due job ran ('shared' has fresh replicas): each of its VMs exactly once
    expect(vms.map(vm => all.filter(r => r.vm.uuid === vm.uuid && r.status === 'success').length)).toEqual(
      vms.map(() => 1),
    )
    const dueStatuses = outcomes.map(outcome => {
      const done = outcome.events.find(e => e.kind === 'run-due-done') as unknown as {
        jobs: { name: string; status: string }[]
      }
      expect(done.jobs.find(j => j.name === 'shared')?.status).toBe('not-due')
      return done.jobs.find(j => j.name === 'due')?.status
    })
    // on a busy host a controller may start only once the others have replicated every VM:
    // it finds the job not due, which is right; at least one controller ran it
    for (const status of dueStatuses) expect(['ok', 'leased', 'not-due']).toContain(status)
    expect(dueStatuses).toContain('ok')
    // a controller that comes later finds nothing due
    const late = await start(0, ['run', '--due']).done
    expect(late.code, late.stderr).toBe(0)
    expect(results(late)).toEqual([])
  }, 120_000)
})
