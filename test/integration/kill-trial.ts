/**
 * The kill -9 trial shared by `kill-matrix.test.ts` (npm test) and `test/soak/` (npm run soak):
 * a lab with one VM (two small disks) on a source pool and one SR on a target pool, a job with
 * retention 2 seeded by a full pass, then per trial: write to the VM, start the real CLI
 * (`xen-cr run`) as its own process, SIGKILL it once the lab has answered a chosen number of API
 * calls (drawn over the whole pass, so the kill lands in the snapshot, the clones, the replica's
 * assembly, the import, the finalisation or the rotation), and check what the next pass — or
 * `xen-cr cleanup` first, every few trials — makes of it: the next pass succeeds as a delta, the
 * newest replica's bytes equal its source snapshot's, and an inventory of both pools finds no
 * object xen-cr made that belongs to no complete replica or base snapshot. Not a test file.
 */
import { spawn } from 'node:child_process'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { run } from '../../src/cli/program.js'
import type { Lab } from '../../src/lab/start.js'
import type { LabSpec } from '../../src/lab/spec.js'
import {
  KEYS,
  START_BLOCKED_MESSAGE,
  TEMP_SNAPSHOT_NAME,
  isPlaceholderDatetime,
  leaseKeyPrefix,
} from '../../src/replication/metadata.js'
import type { XapiClient } from '../../src/xapi/client.js'
import { isNullRef, type Ref, type VmRecord } from '../../src/xapi/types.js'
import { builtBinary } from '../helpers/built.js'
import { startTempLab } from '../helpers/lab.js'
import { connect, disksOf, rawSha256 } from './replication-fixture.js'

const SPEC: LabSpec = {
  pools: [
    {
      name: 'src',
      srs: [{ name: 'Local storage' }],
      networks: [{ name: 'Pool-wide network associated with eth0' }],
      vms: [
        {
          name: 'web',
          powerState: 'Running',
          disks: [
            { name: 'web root', size: '8 MiB', filled: '4 MiB', seed: 1 },
            { name: 'web data', size: '4 MiB', filled: '2 MiB', seed: 2 },
          ],
          networks: ['Pool-wide network associated with eth0'],
        },
      ],
    },
    {
      name: 'tgt',
      srs: [{ name: 'Replica A' }],
      networks: [{ name: 'Pool-wide network associated with eth0' }],
    },
  ],
}

const RETENTION = 2
/** Labels of the tasks a pass makes that name the job's objects (see `replication/leftovers.ts`). */
const MADE_BY_A_PASS = /^(?:xen-cr: (?:export|import) VDI |Async\.VM\.snapshot$|Async\.VDI\.clone$)/
const DISKS = 2
/** the shortest lease `run` takes: a killed run's lease frees the VM this long after its last renewal */
const LEASE_TIME = '1s'

/** Where a kill landed: the furthest step of the pass the lab had seen calls for. */
export type Phase = 'login' | 'snapshot' | 'clone' | 'create' | 'import' | 'finalise' | 'rotation' | 'completed'

export interface TrialResult {
  readonly trial: number
  /** API calls answered (both pools) when the process was killed; the pass's full count when it completed first */
  readonly killAt: number
  readonly phase: Phase
  /** how the leftovers went: the next pass alone, or `xen-cr cleanup` first */
  readonly via: 'pass' | 'cleanup'
  /** objects `cleanup` removed (0 when the pass swept) */
  readonly cleaned: number
  /** what went wrong after this kill, one line each (empty: the trial held) */
  readonly problems: readonly string[]
}

/** A deterministic PRNG (mulberry32): a failing trial is replayed with the same seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The kill points: one drawn at random in each of `n` equal slices of the pass's calls. */
export function killPoints(n: number, passCalls: number, random: () => number): number[] {
  const span = Math.max(1, passCalls - 1)
  return Array.from({ length: n }, (_, i) => 1 + Math.min(span - 1, Math.floor(((i + random()) * span) / n)))
}

/** What a run of the matrix found. */
export interface MatrixSummary {
  readonly results: readonly TrialResult[]
  readonly killed: number
  readonly failed: readonly TrialResult[]
  /** kills per step of the pass */
  readonly phases: Readonly<Record<string, number>>
  readonly line: string
}

/**
 * Runs trials until `kills` of them killed the pass mid-way: one kill point drawn in each of
 * `kills` equal slices of the pass's calls, then (for a pass that ended before its point) a few
 * more drawn earlier in the pass. Every `cleanupEvery`-th trial recovers through `xen-cr cleanup`.
 */
export async function runMatrix(
  m: KillMatrix,
  kills: number,
  seed: number,
  options: { cleanupEvery?: number; onTrial?: (r: TrialResult) => void } = {},
): Promise<MatrixSummary> {
  const random = prng(seed)
  const every = options.cleanupEvery ?? 5
  const results: TrialResult[] = []
  const one = async (at: number): Promise<void> => {
    const r = await m.trial(at, results.length % every === every - 1, results.length)
    results.push(r)
    options.onTrial?.(r)
  }
  // in random order: a run stopped early (a soak cut short) still covers the whole pass
  const points = killPoints(kills, m.passCalls, random)
  for (let i = points.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[points[i], points[j]] = [points[j]!, points[i]!]
  }
  for (const at of points) await one(at)
  for (let extra = 0; extra < 10 && results.filter(r => r.phase !== 'completed').length < kills; extra++)
    await one(1 + Math.floor(random() * m.passCalls * 0.8))
  const killed = results.filter(r => r.phase !== 'completed').length
  const failed = results.filter(r => r.problems.length > 0)
  const phases: Record<string, number> = {}
  for (const r of results) phases[r.phase] = (phases[r.phase] ?? 0) + 1
  const cleaned = results.filter(r => r.via === 'cleanup')
  const line =
    `kill matrix (seed ${seed}): ${results.length} trials, ${killed} SIGKILLed mid-pass, ${failed.length} failed, ` +
    `orphans found ${results.reduce((n, r) => n + r.problems.filter(p => / attached to nothing| hangs on no | never exported| temporary name| incomplete| left by a pass/.test(p)).length, 0)}; ` +
    `a pass = ${m.passCalls} API calls; kills by step ${JSON.stringify(phases)}; ` +
    `${cleaned.length} recovered through xen-cr cleanup (${cleaned.reduce((n, r) => n + r.cleaned, 0)} objects removed); ` +
    `tasks left on the pools: ${await m.leftoverTasks()}`
  return { results, killed, failed, phases, line }
}

export class KillMatrix {
  readonly lab: Lab
  readonly source: XapiClient
  readonly target: XapiClient
  readonly vmRef: Ref<'VM'>
  readonly vmUuid: string
  readonly jobId: string
  /** API calls of one complete delta pass of the CLI, both pools */
  readonly passCalls: number
  readonly #binary: string
  /** disks attached to nothing before the job's first pass (the lab's own), by uuid */
  readonly #loose: ReadonlySet<string>
  #trial = 0

  private constructor(o: {
    lab: Lab
    source: XapiClient
    target: XapiClient
    vmRef: Ref<'VM'>
    vmUuid: string
    jobId: string
    passCalls: number
    binary: string
    loose: ReadonlySet<string>
  }) {
    this.lab = o.lab
    this.source = o.source
    this.target = o.target
    this.vmRef = o.vmRef
    this.vmUuid = o.vmUuid
    this.jobId = o.jobId
    this.passCalls = o.passCalls
    this.#binary = o.binary
    this.#loose = o.loose
  }

  /** Starts the lab, creates the job, runs the first (full) pass and measures a delta pass's calls. */
  static async start(): Promise<KillMatrix> {
    // XEN_CR_KILL_BINARY: another build's bin/xen-cr.js (e.g. an older commit's, to compare)
    const binary = process.env['XEN_CR_KILL_BINARY'] ?? builtBinary()
    const lab = await startTempLab(SPEC)
    try {
      const source = await connect(lab, 'src')
      const target = await connect(lab, 'tgt')
      const vms = await source.getAllRecords('VM')
      const [vmRef, vm] = [...vms].find(([, v]) => v.name_label === 'web')!
      const sr = [...(await target.getAllRecords('SR')).values()].find(s => s.name_label === 'Replica A')!
      const loose = new Set<string>()
      for (const client of [source, target])
        for (const vdi of (await client.getAllRecords('VDI')).values()) if (vdi.VBDs.length === 0) loose.add(vdi.uuid)
      const created = await cliInProcess(lab, [
        '--json',
        'job',
        'create',
        '--name',
        'nightly',
        '--source',
        'src',
        '--target',
        'tgt',
        '--sr',
        sr.uuid,
        '--vm',
        vm.uuid,
        '--interval',
        '1h',
        '--retention',
        String(RETENTION),
      ])
      if (created.code !== 0) throw new Error(`job create failed: ${created.err}`)
      const jobId = (JSON.parse(created.out.trim().split('\n').at(-1)!) as { job: { id: string } }).job.id
      const full = await cliInProcess(lab, ['--json', 'run', 'nightly'])
      if (full.code !== 0) throw new Error(`the first pass failed: ${full.out}${full.err}`)
      // a delta pass that reaches the retention, so that the measured pass rotates a replica as
      // every trial's does (the measure would otherwise end before a trial's rotation begins)
      await lab.control.writeGuestData('src', vm.uuid, { blocks: [1, 2], seed: 98 })
      const filling = await cliInProcess(lab, ['--json', 'run', 'nightly'])
      if (filling.code !== 0) throw new Error(`the second pass failed: ${filling.out}${filling.err}`)
      // one complete delta pass of the real process, for the range the kill points are drawn from
      await lab.control.writeGuestData('src', vm.uuid, { blocks: [0, 3], seed: 99 })
      const before = totalCalls(lab)
      const whole = await runProcess(binary, lab, () => false)
      if (whole.code !== 0) throw new Error(`the measuring pass failed (${whole.code}): ${whole.stderr}`)
      const passCalls = totalCalls(lab) - before
      return new KillMatrix({ lab, source, target, vmRef, vmUuid: vm.uuid, jobId, passCalls, binary, loose })
    } catch (error) {
      await lab.stop()
      throw error
    }
  }

  async close(): Promise<void> {
    await this.source.close()
    await this.target.close()
    await this.lab.stop()
  }

  /**
   * One trial: kill the CLI after `killAt` API calls of its pass (1 ≤ killAt < passCalls), then
   * recover through the next pass (after `xen-cr cleanup` when `viaCleanup`) and check.
   */
  async trial(killAt: number, viaCleanup: boolean, seed: number): Promise<TrialResult> {
    const trial = ++this.#trial
    const problems: string[] = []
    const blocks = [seed % 2, 2 + (seed % 2)]
    await this.lab.control.writeGuestData('src', this.vmUuid, { blocks, seed: 1000 + seed })
    const before = totalCalls(this.lab)
    const methodsBefore = methodCounts(this.lab)
    const child = await runProcess(this.#binary, this.lab, () => totalCalls(this.lab) - before >= killAt)
    const phase = child.killed ? phaseOf(methodsBefore, methodCounts(this.lab)) : 'completed'
    if (!child.killed && child.code !== 0)
      problems.push(`the pass that was to be killed exited ${child.code}: ${child.stderr.trim()}`)
    await this.#waitForLease()

    let cleaned = 0
    if (viaCleanup) {
      const dry = await cliInProcess(this.lab, ['--json', 'cleanup', 'nightly', '--dry-run'])
      const listed = eventsOf(dry.out).find(e => e.kind === 'cleanup-plan') as { remove?: unknown[] } | undefined
      if (dry.code !== 0 || listed === undefined)
        problems.push(`cleanup --dry-run exited ${dry.code}: ${dry.err.trim()}`)
      const real = await cliInProcess(this.lab, ['--json', 'cleanup', 'nightly'])
      if (real.code !== 0) problems.push(`cleanup exited ${real.code}: ${real.err.trim()} ${real.out.trim()}`)
      cleaned = eventsOf(real.out).filter(e => e.kind === 'cleanup-removed').length
      if (listed?.remove !== undefined && listed.remove.length !== cleaned)
        problems.push(`cleanup --dry-run listed ${listed.remove.length} object(s), cleanup removed ${cleaned}`)
      // right after cleanup, before any pass: only complete replicas and base snapshots remain
      problems.push(...(await this.inventory(false)).map(p => `after cleanup: ${p}`))
    }

    const next = await cliInProcess(this.lab, ['--json', 'run', 'nightly'])
    const done = eventsOf(next.out).find(e => e.kind === 'vm-done') as
      | {
          result: {
            status: string
            mode?: string
            message?: string
            error?: { message: string }
            replicas?: { uuid: string }[]
          }
        }
      | undefined
    if (next.code !== 0 || done?.result.status !== 'success')
      problems.push(
        `the next pass failed (exit ${next.code}): ${done?.result.error?.message ?? done?.result.message ?? (next.err.trim() || next.out.trim().split('\n').at(-1))}`,
      )
    else if (done.result.mode !== 'delta') problems.push(`the next pass was a ${done.result.mode}, not a delta`)
    problems.push(...(await this.newestMatches(done?.result.replicas?.[0]?.uuid)))
    problems.push(...(await this.inventory()))
    return { trial, killAt, phase, via: viaCleanup ? 'cleanup' : 'pass', cleaned, problems }
  }

  /** Waits until the killed run's lease on the VM has run out (it renews every quarter of 1 s). */
  async #waitForLease(): Promise<void> {
    const oc = await this.source.call<Record<string, string>>('VM.get_other_config', [this.vmRef])
    let until = 0
    for (const [key, raw] of Object.entries(oc)) {
      if (!key.startsWith(leaseKeyPrefix(this.jobId))) continue
      const record = JSON.parse(raw) as { expires?: string; released?: boolean }
      if (record.released !== true && record.expires !== undefined) until = Math.max(until, Date.parse(record.expires))
    }
    const wait = until - Date.now()
    if (wait > 0) await sleep(wait + 50)
  }

  /** The newest complete replica's disks hash like the disks of the source snapshot it is a copy of. */
  async newestMatches(uuid?: string): Promise<string[]> {
    const vms = await this.target.getAllRecords('VM')
    // the replica the last pass reported; else the newest by datetime (two passes may share a second)
    const complete = [...vms]
      .filter(([, v]) => uuid === undefined || v.uuid === uuid)
      .filter(([, v]) => !v.is_a_snapshot && v.other_config[KEYS.job] === this.jobId)
      .filter(([, v]) => !isPlaceholderDatetime(v.other_config[KEYS.datetime]))
      .sort(([, a], [, b]) => b.other_config[KEYS.datetime]!.localeCompare(a.other_config[KEYS.datetime]!))
    const newest = complete[0]
    if (newest === undefined) return ['no complete replica on the target']
    const snapUuid = newest[1].other_config[KEYS.copyOf]
    const snapshot = [...(await this.source.getAllRecords('VM'))].find(([, v]) => v.uuid === snapUuid)
    if (snapshot === undefined)
      return [`the newest replica ${newest[1].name_label} is a copy of ${snapUuid}, not on the source`]
    const r = await Promise.all((await disksOf(this.target, newest[0])).map(d => rawSha256(this.target, d)))
    const s = await Promise.all((await disksOf(this.source, snapshot[0])).map(d => rawSha256(this.source, d)))
    return r.length === DISKS && r.join() === s.join()
      ? []
      : [`the newest replica's disks (${r.length}) differ from its source snapshot's (${s.length})`]
  }

  /**
   * Every object on both pools that xen-cr made and that belongs to no complete replica or base
   * snapshot, one line each — read straight from the records, by rules of its own (not the
   * product's leftover search): job-keyed VMs on the target are complete, protected replicas
   * with both disks, at most `RETENTION` of them; the source VM's snapshots are exported job
   * snapshots, never the temporary name; every job-keyed disk hangs on one of those; no disk on
   * either pool is attached to nothing (the lab starts with none).
   */
  async inventory(strict = true): Promise<string[]> {
    const out: string[] = []
    const [tVms, tVdis, tVbds, sVms, sVdis, sVbds] = await Promise.all([
      this.target.getAllRecords('VM'),
      this.target.getAllRecords('VDI'),
      this.target.getAllRecords('VBD'),
      this.source.getAllRecords('VM'),
      this.source.getAllRecords('VDI'),
      this.source.getAllRecords('VBD'),
    ])
    const good = new Set<string>()
    let replicas = 0
    for (const [ref, vm] of tVms) {
      if (vm.is_a_template || vm.is_control_domain) continue
      const keyed = vm.other_config[KEYS.job] === this.jobId
      if (!keyed) {
        out.push(`target VM ${vm.name_label} (${vm.uuid}) carries no key of the job`)
        continue
      }
      const problem = replicaProblem(vm, tVbds)
      if (problem !== undefined) out.push(`target VM ${vm.name_label} (${vm.uuid}): ${problem}`)
      else {
        good.add(ref)
        replicas++
      }
    }
    // right after cleanup, before the next pass, a complete replica beyond the retention (and the
    // unexported snapshot it is a copy of) still belongs to a complete replica: rotation is that pass's
    if (strict && replicas > RETENTION)
      out.push(`${replicas} complete replicas on the target, retention is ${RETENTION}`)
    const copied = new Set([...tVms].filter(([ref]) => good.has(ref)).map(([, v]) => v.other_config[KEYS.copyOf]))
    for (const [ref, vm] of sVms) {
      if (!vm.is_a_snapshot) continue
      if (vm.name_label === TEMP_SNAPSHOT_NAME) out.push(`source snapshot ${vm.uuid} still has the temporary name`)
      else if (vm.other_config[KEYS.job] !== this.jobId)
        out.push(`source snapshot ${vm.name_label} (${vm.uuid}) carries no key of the job`)
      else if (vm.other_config[KEYS.exported] === undefined && (strict || !copied.has(vm.uuid)))
        out.push(`source snapshot ${vm.name_label} (${vm.uuid}) was never exported`)
      else good.add(ref)
    }
    for (const [pool, vdis, vbds] of [
      ['target', tVdis, tVbds],
      ['source', sVdis, sVbds],
    ] as const) {
      for (const vdi of vdis.values()) {
        // a base copy: the storage's own frozen parent of a chain, not an object of the API's
        if (!vdi.managed) continue
        const owners = vdi.VBDs.map(v => vbds.get(v)?.VM).filter(v => v !== undefined)
        if (owners.length === 0 && !this.#loose.has(vdi.uuid))
          out.push(`${pool} disk ${vdi.name_label} (${vdi.uuid}) is attached to nothing`)
        else if (vdi.other_config[KEYS.job] === this.jobId && !owners.some(o => good.has(o)))
          out.push(
            `${pool} disk ${vdi.name_label} (${vdi.uuid}) carries the job's keys and hangs on no replica or base snapshot`,
          )
      }
    }
    // xen-cr's own disk-transfer tasks, and the tasks of the calls that make the job's snapshots
    // and clones: a killed run destroys none of them, so its sweep (or cleanup) must. The host's
    // own tasks name nothing: reported only.
    for (const [pool, client] of [
      ['target', this.target],
      ['source', this.source],
    ] as const)
      for (const task of (await client.getAllRecords('task')).values())
        if (MADE_BY_A_PASS.test(task.name_label))
          out.push(`${pool} task ${task.name_label} (${task.status}) left by a pass`)
    return out
  }

  /** Tasks left on the pools, by status and label (xen-cr's transfer tasks, the Async calls'): reported. */
  async leftoverTasks(): Promise<string> {
    const counts = new Map<string, number>()
    for (const client of [this.source, this.target])
      for (const task of (await client.getAllRecords('task')).values()) {
        const key = `${task.status} ${task.name_label.replace(/OpaqueRef:\S+/, '<ref>')}`
        counts.set(key, (counts.get(key) ?? 0) + 1)
      }
    return counts.size === 0 ? 'none' : [...counts].map(([key, n]) => `${n} ${key}`).join(', ')
  }
}

/** Why a job-keyed target VM is not a complete replica, or undefined. */
function replicaProblem(
  vm: VmRecord,
  vbds: ReadonlyMap<Ref<'VBD'>, { readonly type: string; readonly VDI: Ref<'VDI'> }>,
): string | undefined {
  if (vm.is_a_snapshot) return 'a snapshot on the target'
  if (isPlaceholderDatetime(vm.other_config[KEYS.datetime])) return 'incomplete (placeholder datetime)'
  if (vm.name_label.startsWith('[Importing')) return 'still named as importing'
  if (vm.blocked_operations['start'] !== START_BLOCKED_MESSAGE) return 'start not blocked as a replica'
  const disks = vm.VBDs.filter(v => {
    const vbd = vbds.get(v)
    return vbd?.type === 'Disk' && !isNullRef(vbd.VDI)
  })
  if (disks.length !== DISKS) return `${disks.length} disk(s), not ${DISKS}`
  return undefined
}

function totalCalls(lab: Lab): number {
  return lab.pools.reduce((n, p) => n + lab.control.transferStats(p.name).xapi.calls, 0)
}

function methodCounts(lab: Lab): Map<string, number> {
  const out = new Map<string, number>()
  for (const p of lab.pools)
    for (const [method, { calls }] of Object.entries(lab.control.transferStats(p.name).xapi.byMethod))
      out.set(method, (out.get(method) ?? 0) + calls)
  return out
}

/** The furthest step of a pass the calls between two counts reached. */
function phaseOf(before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): Phase {
  const called = (method: string): number => (after.get(method) ?? 0) - (before.get(method) ?? 0)
  const any = (...methods: string[]): boolean => methods.some(m => called(m) + called(`Async.${m}`) > 0)
  if (any('VM.destroy', 'VDI.destroy')) return 'rotation'
  if (any('VM.set_blocked_operations') && called('VM.set_blocked_operations') >= 2) return 'finalise'
  if (any('VBD.create', 'VIF.create', 'task.create')) return 'import'
  if (any('VM.create')) return 'create'
  if (any('VDI.clone')) return 'clone'
  if (any('VM.snapshot')) return 'snapshot'
  return 'login'
}

function eventsOf(out: string): { kind: string; [k: string]: unknown }[] {
  return out
    .trim()
    .split('\n')
    .filter(line => line.startsWith('{'))
    .map(line => JSON.parse(line) as { kind: string })
}

/** The CLI in this process (the lab's config and job store); stdout is not a TTY. */
async function cliInProcess(lab: Lab, args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const sink = (append: (s: string) => void): Writable =>
    new Writable({
      write(chunk: Buffer, _e, cb) {
        append(chunk.toString())
        cb()
      },
    })
  const code = await run(['--config', lab.configPath, ...args], {
    stdout: sink(s => (out += s)),
    stderr: sink(s => (err += s)),
    env: { HOME: lab.dir, XDG_CONFIG_HOME: lab.dir, NO_COLOR: '1' },
    cwd: lab.dir,
    // each call is a run of its own: "since this run started" is now, not when this process did
    now: () => new Date(),
  })
  return { code, out, err }
}

/**
 * `xen-cr run nightly` as its own process; SIGKILLed as soon as `killNow()` says so (checked
 * every millisecond and on each of its output lines). Resolves once it has exited.
 */
function runProcess(
  binary: string,
  lab: Lab,
  killNow: () => boolean,
): Promise<{ code: number | null; killed: boolean; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [binary, '--config', lab.configPath, '--json', 'run', 'nightly', '--lease-time', LEASE_TIME],
      {
        env: { ...process.env, HOME: lab.dir, XDG_CONFIG_HOME: lab.dir, NO_COLOR: '1' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    )
    let stderr = ''
    let killed = false
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const poll = setInterval(() => {
      if (!killed && killNow()) {
        killed = child.kill('SIGKILL')
        clearInterval(poll)
      }
    }, 1)
    child.on('error', error => {
      clearInterval(poll)
      reject(error)
    })
    child.on('exit', code => {
      clearInterval(poll)
      resolve({ code, killed: killed && code === null, stderr })
    })
  })
}
