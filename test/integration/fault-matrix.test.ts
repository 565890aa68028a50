/**
 * The fault matrix of issue 8: every XAPI method a pass makes fails once, on each pool, and the
 * pass is judged by what an operator sees — exit code, one-line errors, what is left on the pools.
 * - transient codes (TOO_MANY_PENDING_TASKS, then SESSION_INVALID on the retry): the same pass
 *   succeeds;
 * - a logical code (HANDLE_INVALID): exit 1 with one-line errors and nothing left behind, unless
 *   the method's failure is harmless by design (TOLERATED, each with its reason);
 * - the connection dropped without an answer: an idempotent method is retried and the pass
 *   succeeds; a non-idempotent one (VM.snapshot, VDI.clone, VM.create…) is not retried, since it
 *   may have run (retry.ts): the VM fails, nothing left;
 * plus HOST_IS_SLAVE redirects, disk streams cut on either side, an import task refused, latency
 * everywhere, a call that outlives the call timeout, and a blackholed host (exit 4 in one line
 * naming it). Every pass after the first runs against the state the previous row left, and must
 * be a delta: a row that left debris or broke the chain fails the next one too.
 *
 * The list of methods is not written here: it is recorded from a clean pass against the lab
 * (call counts per method), so a method a pass starts to call is covered without editing this.
 * Rows run one after the other on one lab; the table of cases and failures is printed at the end.
 * HTTPS rows (wrong certificate, pinned certificate) live with the TLS tests.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import type { LabFault } from '../../src/lab/faults.js'
import type { Lab } from '../../src/lab/start.js'
import { KEYS, PLACEHOLDER_DATETIME } from '../../src/replication/metadata.js'
import type { XapiClient } from '../../src/xapi/client.js'
import { isIdempotent } from '../../src/xapi/retry.js'
import { isNullRef } from '../../src/xapi/types.js'
import { builtBinary } from '../helpers/built.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'

const JOB = 'fm'
const RETENTION = 2
type Pool = 'src' | 'tgt'

/**
 * Methods whose logical failure a pass survives by design, with why. A method that fails the
 * pass and is listed here, or succeeds and is not, fails its row.
 */
const TOLERATED: Readonly<Record<string, string>> = {
  'session.logout': 'the run is over; a session the host did not close expires on its own',
  'task.destroy':
    'the operation itself succeeded; the finished task left names a disk of the job or the object it made, and the next pass sweeps it',
  'event.from': 'the task watcher starts over with a fresh token and reads every watched task',
  'event.inject': 'the task watcher starts over (wake-up of a finished loop on close is best effort)',
  'task.cancel': 'only sent for an aborted operation',
  'task.get_record':
    'read only for a task no event covers (none in a routine pass): the watch of that one task starts over',
  'VM.destroy': 'rotation, once the new replica is complete: what it could not remove, the next pass sweeps',
  'VDI.destroy': 'rotation, once the new replica is complete: what it could not remove, the next pass sweeps',
}

/**
 * Calls a disk transfer makes: a dropped one restarts that disk (delta/transfer-disk.ts), which
 * may leave a duplicate of what the lost call made — for `task.create`, a task bound to the
 * session that XAPI removes with it — so the pass succeeds.
 */
const DISK_RESTART = new Set(['task.create'])

/** `session.logout` is sent as the client closes, after the outcome is settled, unobserved. */
const UNOBSERVED = new Set(['session.logout'])

/**
 * The logical failure each method gets: HANDLE_INVALID (the object is gone), except where that
 * would mean success — a destroy answered HANDLE_INVALID found nothing left to destroy.
 */
function logicalFault(method: string): { code: string; params: string[] } {
  return method.endsWith('.destroy')
    ? { code: 'OPERATION_NOT_ALLOWED', params: ['refused by the fault matrix'] }
    : { code: 'HANDLE_INVALID', params: ['VM', 'OpaqueRef:gone'] }
}

/**
 * Rows that fail today, each with what is wrong and whose area it is. The test asserts that
 * they still fail (so a fix shows up as a failing "known gap" to delete from here) and that
 * every other row passes.
 */
const KNOWN_GAPS: Readonly<Record<string, string>> = {}

/** Methods of the login itself: a logical failure there is a failed login (exit 4). */
const LOGIN_METHODS = new Set(['session.login_with_password', 'pool.get_all_records', 'system.listMethods'])

interface Outcome {
  readonly code: number
  /** status and mode of each VM of the pass */
  readonly vms: readonly { status: string; mode?: string; error?: { code: string; message: string } }[]
  /** every error and warning message the run printed (NDJSON) */
  readonly messages: readonly string[]
  /** the codes of its warnings */
  readonly warnings: readonly string[]
  /** lines that are not JSON on either stream (a crash, a stack) */
  readonly stderr: string
}

interface Case {
  readonly name: string
  readonly pool: Pool
  readonly faults: readonly LabFault[]
  /** `ok`: exit 0, VM replicated as a delta; `fail`: exit `code`, one-line errors; either way nothing left */
  readonly expect: { readonly kind: 'ok' } | { readonly kind: 'fail'; readonly code: number }
  readonly flags?: readonly string[]
  /** a failure's messages must say this */
  readonly message?: RegExp
  /** the method's failure is harmless by design (TOLERATED): exit 0, and its debris swept by the next pass */
  readonly tolerated?: boolean
  /** a warning the pass must give (a restarted disk: the fault really hit a transfer) */
  readonly warns?: string
}

let lab: Lab
let src: XapiClient
let tgt: XapiClient
let vmUuid: string
/** the source VM's disks, each written before every pass so that every disk has a delta to send */
const diskUuids: string[] = []
let seed = 100
const report: { name: string; expected: string; got: string; ok: boolean }[] = []

beforeAll(async () => {
  lab = await startTempLab({
    pools: [
      {
        name: 'src',
        srs: [{ name: 'sr' }],
        networks: [{ name: 'net' }],
        vms: [
          {
            name: 'vm',
            powerState: 'Running',
            disks: [
              { size: '4 MiB', filled: '2 MiB', seed: 1 },
              { size: '4 MiB', filled: '2 MiB', seed: 2 },
            ],
            networks: ['net'],
          },
        ],
      },
      { name: 'tgt', srs: [{ name: 'sr' }], networks: [{ name: 'net' }] },
    ],
  })
  src = await connectLabPool(labPool(lab, 'src'))
  tgt = await connectLabPool(labPool(lab, 'tgt'))
  vmUuid = lab.control.findVm('src', 'vm')!.uuid
  const [, vm] = [...(await src.getAllRecords('VM'))].find(([, v]) => v.uuid === vmUuid)!
  for (const vbd of vm.VBDs) {
    const { VDI, type } = await src.getRecord('VBD', vbd)
    if (type === 'Disk') diskUuids.push((await src.getRecord('VDI', VDI)).uuid)
  }
}, 60_000)

afterAll(async () => {
  if (report.length > 0) {
    const failed = report.filter(r => !r.ok)
    const width = Math.max(...report.map(r => r.name.length))
    console.log(
      [
        `fault matrix: ${report.length} cases, ${failed.length} failures (${failed.filter(r => KNOWN_GAPS[r.name] !== undefined).length} of them known gaps)`,
        ...report.map(
          r =>
            `${r.ok ? 'ok  ' : KNOWN_GAPS[r.name] === undefined ? 'FAIL' : 'GAP '} ${r.name.padEnd(width)}  expected ${r.expected}, got ${r.got}`,
        ),
      ].join('\n'),
    )
  }
  await src?.close()
  await tgt?.close()
  await lab?.stop()
})

async function cli(args: readonly string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const sink = (append: (s: string) => void): Writable =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        append(chunk.toString())
        done()
      },
    })
  const code = await run(['--config', lab.configPath, '--jobs-file', join(lab.dir, 'jobs.json'), ...args], {
    stdout: sink(s => (out += s)),
    stderr: sink(s => (err += s)),
    env: { HOME: lab.dir, XDG_CONFIG_HOME: lab.dir },
    cwd: lab.dir,
    // in-process, each run starts now (not at the test process's start, which would make every
    // pass after the first look like one that another run made "since this run started")
    now: () => new Date(),
  })
  return { code, out, err }
}

/** One pass of the job after a guest write (so there is a delta to send), parsed from its NDJSON. */
async function pass(flags: readonly string[] = []): Promise<Outcome> {
  // a whole 2 MiB block on each disk: a stream cut after 1 MiB hits whichever transfer comes first
  for (const disk of diskUuids) await lab.control.writeGuestData('src', disk, { blocks: [seed % 2], seed: seed++ })
  const { code, out, err } = await cli(['--json', ...flags, 'run', JOB])
  // with --json both streams carry only JSON lines (errors on stderr)
  const lines = `${out}\n${err}`.split('\n')
  const events = lines
    .filter(line => line.startsWith('{'))
    .map(line => JSON.parse(line) as { kind: string; code?: string; message?: string; result?: Outcome['vms'][number] })
  const vms = events.filter(e => e.kind === 'vm-done').map(e => e.result!)
  const messages = [
    ...events.filter(e => e.kind === 'error' || e.kind === 'warning').map(e => e.message ?? ''),
    ...vms.flatMap(v => (v.error === undefined ? [] : [v.error.message])),
  ]
  const warnings = events.flatMap(e => (e.kind === 'warning' && e.code !== undefined ? [e.code] : []))
  const stray = lines.filter(line => line.trim() !== '' && !line.startsWith('{')).join('\n')
  return { code, vms, messages, warnings, stderr: stray }
}

/**
 * What xen-cr made that belongs to no complete replica or base snapshot: target VMs that are
 * not complete replicas of the job, disks attached to none of them, more replicas than the
 * retention; on the source, snapshots that are not the job's, snapshot disks of no snapshot;
 * tasks left on either pool.
 */
async function leftovers(): Promise<string[]> {
  const found: string[] = []
  const tvms = await tgt.getAllRecords('VM')
  const tvbds = await tgt.getAllRecords('VBD')
  const complete = new Set<string>()
  for (const [ref, vm] of tvms) {
    if (vm.is_control_domain) continue
    const ours = vm.other_config[KEYS.job] !== undefined
    const done = ours && vm.other_config[KEYS.datetime] !== PLACEHOLDER_DATETIME && !vm.name_label.startsWith('[')
    if (done) complete.add(ref)
    else found.push(`target VM ${vm.name_label} (${ours ? 'incomplete replica' : 'not a replica'})`)
  }
  if (complete.size > RETENTION) found.push(`${complete.size} replicas, retention ${RETENTION}`)
  for (const [ref, vdi] of await tgt.getAllRecords('VDI')) {
    // SM's hidden parents of snapshots and clones ("base copy"), not objects of ours
    if (!vdi.managed) continue
    const attached = vdi.VBDs.some(vbd => complete.has(tvbds.get(vbd)?.VM ?? ''))
    if (!attached) found.push(`target VDI ${vdi.name_label} ${ref} attached to no replica`)
  }
  const svms = await src.getAllRecords('VM')
  const snapshots = new Set<string>()
  for (const [ref, vm] of svms) {
    if (!vm.is_a_snapshot) continue
    if (vm.other_config[KEYS.job] === undefined) found.push(`source snapshot ${vm.name_label} without the job's keys`)
    snapshots.add(ref)
  }
  if (snapshots.size > RETENTION) found.push(`${snapshots.size} source snapshots`)
  const svbds = await src.getAllRecords('VBD')
  for (const [ref, vdi] of await src.getAllRecords('VDI')) {
    if (!vdi.is_a_snapshot) continue
    const of = vdi.VBDs.flatMap(vbd => {
      const vm = svbds.get(vbd)?.VM
      return vm === undefined || isNullRef(vm) ? [] : [vm]
    })
    if (!of.some(vm => snapshots.has(vm))) found.push(`source snapshot VDI ${vdi.name_label} ${ref} of no snapshot`)
  }
  for (const [pool, client] of [
    ['source', src],
    ['target', tgt],
  ] as const) {
    for (const task of (await client.getAllRecords('task')).values()) found.push(`${pool} task ${task.name_label}`)
  }
  return found
}

/**
 * A lease a finished run left live on the source VM (its release failed): the next passes would
 * be skipped as leased for the lease time. Removed here once reported, so that the rows after
 * it test their own fault rather than this one.
 */
async function liveLeaseLeft(): Promise<string | undefined> {
  const [ref, vm] = [...(await src.getAllRecords('VM'))].find(([, v]) => v.uuid === vmUuid)!
  const entries = Object.entries(vm.other_config).filter(([key]) => key.startsWith('xen-cr:lease:'))
  const sorted = [...entries].sort(([a], [b]) => Number(a.split(':').pop()) - Number(b.split(':').pop()))
  const top = sorted[sorted.length - 1]
  if (top === undefined) return undefined
  const record = JSON.parse(top[1]) as { released?: boolean; expires: string }
  if (record.released === true || Date.parse(record.expires) <= Date.now()) return undefined
  for (const [key] of entries) await src.call('VM.remove_from_other_config', [ref, key])
  return `live lease ${top[0]} left on the source VM`
}

/**
 * Debris a tolerated row left, which the next pass must have removed — or, when that pass's own
 * fault hit the removal and the pass said so (CLEANUP_FAILED), the pass after it.
 */
let pending: { readonly row: (typeof report)[number]; readonly items: readonly string[]; readonly deferred?: true }[] =
  []

/** Runs one row and records it in the report (the test fails at the end on any failed row). */
let lastInventory: readonly string[] = []

async function runCase(c: Case): Promise<void> {
  const before = new Set(lastInventory)
  lab.control.clearFaults()
  for (const fault of c.faults) lab.control.injectFault(c.pool, fault)
  const outcome = await pass(c.flags)
  const unspent = lab.control.listFaults(c.pool).filter(f => f.nth !== undefined)
  lab.control.clearFaults()
  const after = await leftovers()
  lastInventory = after
  const waiting = pending
  pending = []
  for (const p of waiting) {
    const survived = p.items.filter(item => after.includes(item))
    if (survived.length > 0 && p.deferred === undefined && outcome.warnings.includes('CLEANUP_FAILED')) {
      p.row.got += `; the next pass's own fault hit its removal (CLEANUP_FAILED)`
      pending.push({ ...p, items: survived, deferred: true })
    } else if (survived.length > 0) {
      p.row.ok = false
      p.row.got += `; not removed by the next pass: ${survived.join('; ')}`
    } else p.row.got += ' (removed by the next pass)'
  }
  const left = after.filter(item => !before.has(item))
  const lease = await liveLeaseLeft()
  const multiLine = outcome.messages.filter(m => m.includes('\n') || /strictly unequal|AssertionError/.test(m))
  const vm = outcome.vms[0]
  const got =
    `exit ${outcome.code}` +
    (vm === undefined ? '' : `, ${vm.status}${vm.mode === undefined ? '' : ` ${vm.mode}`}`) +
    (vm?.error === undefined ? '' : ` [${vm.error.code}]`) +
    (unspent.length > 0 ? ', fault never fired' : '') +
    (left.length > 0 ? `, left: ${left.join('; ')}` : '') +
    (lease !== undefined ? `, ${lease}` : '') +
    (multiLine.length > 0 ? `, multi-line error: ${multiLine[0]}` : '') +
    (c.warns !== undefined && !outcome.warnings.includes(c.warns) ? `, no ${c.warns} warning` : '') +
    (outcome.stderr !== '' ? `, stray output: ${outcome.stderr.split('\n')[0]}` : '')
  const expected = c.expect.kind === 'ok' ? 'exit 0, success delta' : `exit ${c.expect.code}, one-line error`
  // What the next pass may sweep: the debris of a tolerated failure (exit 0 by design), and of a
  // call whose outcome is unknown (its task destroyed before it said what it made). Nothing else
  // may leave anything.
  const tolerated = (c.expect.kind === 'ok' && c.tolerated === true) || vm?.error?.code === 'TASK_DESTROYED'
  const ok =
    unspent.length === 0 &&
    (left.length === 0 || tolerated) &&
    lease === undefined &&
    multiLine.length === 0 &&
    outcome.stderr === '' &&
    (c.warns === undefined || outcome.warnings.includes(c.warns)) &&
    (c.expect.kind === 'ok'
      ? outcome.code === 0 && vm?.status === 'success' && vm.mode === 'delta'
      : outcome.code === c.expect.code &&
        outcome.messages.length > 0 &&
        (c.message === undefined || outcome.messages.some(m => c.message!.test(m))))
  const gap = KNOWN_GAPS[c.name]
  const row = { name: c.name, expected, got: gap === undefined ? got : `${got} — known gap: ${gap}`, ok }
  report.push(row)
  if (tolerated && left.length > 0) pending.push({ row, items: left })
}

/** Methods each pool answered during one clean delta pass (calls per method). */
async function recordDeltaPass(): Promise<Record<Pool, string[]>> {
  lab.control.resetCallCounts()
  const outcome = await pass()
  expect(outcome).toMatchObject({ code: 0, vms: [{ status: 'success', mode: 'delta' }] })
  return {
    src: Object.keys(lab.control.callCounts('src')).sort(),
    tgt: Object.keys(lab.control.callCounts('tgt')).sort(),
  }
}

function casesFor(pool: Pool, methods: readonly string[], masterAddress: string): Case[] {
  const cases: Case[] = []
  let idempotentDrops = 4
  for (const method of methods.filter(m => !UNOBSERVED.has(m))) {
    const login = LOGIN_METHODS.has(method)
    cases.push({
      name: `${pool} ${method}: TOO_MANY_PENDING_TASKS then SESSION_INVALID`,
      pool,
      faults: [
        { kind: 'error', method, code: 'TOO_MANY_PENDING_TASKS', nth: 1 },
        { kind: 'error', method, code: 'SESSION_INVALID', params: ['OpaqueRef:stale'], nth: 2 },
      ],
      expect: { kind: 'ok' },
    })
    cases.push({
      name: `${pool} ${method}: ${logicalFault(method).code}`,
      pool,
      faults: [{ kind: 'error', method, ...logicalFault(method), nth: 1 }],
      expect: TOLERATED[method] !== undefined ? { kind: 'ok' } : { kind: 'fail', code: login ? 4 : 1 },
      tolerated: TOLERATED[method] !== undefined,
    })
    // every method that must not be sent twice; of the others, which all take the same retry
    // path, the first few
    if (isIdempotent(method) && !login && idempotentDrops-- <= 0) continue
    cases.push({
      name: `${pool} ${method}: connection dropped`,
      pool,
      faults: [{ kind: 'drop', method, nth: 1 }],
      expect:
        isIdempotent(method) || login || DISK_RESTART.has(method) || TOLERATED[method] !== undefined
          ? { kind: 'ok' }
          : { kind: 'fail', code: 1 },
      tolerated: TOLERATED[method] !== undefined,
    })
  }
  // a coordinator change on the first call of a few methods: followed, the call sent again
  for (const method of methods.filter(m => !LOGIN_METHODS.has(m) && !UNOBSERVED.has(m)).slice(0, 2)) {
    cases.push({
      name: `${pool} ${method}: HOST_IS_SLAVE`,
      pool,
      faults: [{ kind: 'error', method, code: 'HOST_IS_SLAVE', params: [masterAddress], nth: 1 }],
      expect: { kind: 'ok' },
    })
  }
  return cases
}

describe('fault matrix', () => {
  it('every XAPI method of a pass, failed once on each pool; streams, latency, timeouts', async () => {
    const created = await cli([
      'job',
      'create',
      '--name',
      JOB,
      '--source',
      'src',
      '--target',
      'tgt',
      '--all-vms',
      '--interval',
      '1h',
      '--retention',
      String(RETENTION),
    ])
    expect(created.code, created.err).toBe(0)
    const first = await pass()
    expect(first).toMatchObject({ code: 0, vms: [{ status: 'success', mode: 'full' }] })
    const methods = await recordDeltaPass()
    // a pass that made no target calls would make the matrix vacuous
    expect(methods.tgt).toEqual(expect.arrayContaining(['VDI.clone', 'VM.create', 'VBD.create']))
    expect(methods.src).toEqual(expect.arrayContaining(['VM.snapshot']))

    const address = (pool: Pool): string => new URL(labPool(lab, pool).url).host
    const cases: Case[] = [
      ...casesFor('src', methods.src, address('src')),
      ...casesFor('tgt', methods.tgt, address('tgt')),
      {
        name: 'export stream cut after 1 MiB',
        pool: 'src',
        faults: [{ kind: 'data-path', direction: 'export', cutAfterBytes: 1024 * 1024, nth: 1 }],
        expect: { kind: 'ok' },
        warns: 'DISK_TRANSFER_RETRIED',
      },
      {
        name: 'import stream cut after 1 MiB',
        pool: 'tgt',
        faults: [{ kind: 'data-path', direction: 'import', cutAfterBytes: 1024 * 1024, nth: 1 }],
        expect: { kind: 'ok' },
        warns: 'DISK_TRANSFER_RETRIED',
      },
      {
        name: 'import task refused: TOO_MANY_PENDING_TASKS',
        pool: 'tgt',
        faults: [{ kind: 'data-path', direction: 'import', failTask: ['TOO_MANY_PENDING_TASKS'], nth: 1 }],
        expect: { kind: 'ok' },
        warns: 'DISK_TRANSFER_RETRIED',
      },
      {
        name: 'import task fails: SR_FULL',
        pool: 'tgt',
        faults: [{ kind: 'data-path', direction: 'import', failTask: ['SR_FULL', '1', '1'], nth: 1 }],
        expect: { kind: 'fail', code: 1 },
      },
      {
        name: 'VM.snapshot refused: VM_BAD_POWER_STATE',
        pool: 'src',
        faults: [{ kind: 'error', method: 'VM.snapshot', code: 'VM_BAD_POWER_STATE', params: ['x', 'a', 'b'], nth: 1 }],
        expect: { kind: 'fail', code: 1 },
      },
      {
        name: 'latency 20 ms on every source call',
        pool: 'src',
        faults: [{ kind: 'latency', ms: 20 }],
        expect: { kind: 'ok' },
      },
      {
        name: 'latency 20 ms on every target call',
        pool: 'tgt',
        faults: [{ kind: 'latency', ms: 20 }],
        expect: { kind: 'ok' },
      },
      {
        name: 'VM.get_all_records_where outlives --call-timeout 2 once',
        pool: 'src',
        faults: [{ kind: 'latency', method: 'VM.get_all_records_where', ms: 6_000, nth: 1 }],
        flags: ['--call-timeout', '2'],
        expect: { kind: 'ok' },
      },
    ]
    cases.push(
      {
        name: '--vm-timeout 2 while VDI.clone takes 6 s',
        pool: 'tgt',
        faults: [{ kind: 'latency', method: 'VDI.clone', ms: 6_000, nth: 1 }],
        flags: ['--vm-timeout', '2'],
        expect: { kind: 'fail', code: 1 },
        message: /VM timeout of 2 s/,
      },
      {
        name: '--run-timeout 2 while VM.snapshot takes 6 s',
        pool: 'src',
        faults: [{ kind: 'latency', method: 'VM.snapshot', ms: 6_000, nth: 1 }],
        flags: ['--run-timeout', '2'],
        expect: { kind: 'fail', code: 1 },
        message: /run timeout of 2 s/,
      },
    )
    // FAULT_MATRIX_ONLY=<regex> runs the matching rows only (to work on one), never vacuously
    const only = process.env['FAULT_MATRIX_ONLY']
    const selected = only === undefined ? cases : cases.filter(c => new RegExp(only).test(c.name))
    expect(selected.length).toBeGreaterThan(0)
    for (const c of selected) await runCase(c)
    // the last row's debris or broken chain shows in one more clean pass
    await runCase({ name: 'clean pass after the matrix', pool: 'src', faults: [], expect: { kind: 'ok' } })
    expect(report.filter(r => !r.ok && KNOWN_GAPS[r.name] === undefined)).toEqual([])
    // a known gap that no longer fails is fixed: delete it from KNOWN_GAPS
    expect(report.filter(r => r.ok && KNOWN_GAPS[r.name] !== undefined).map(r => r.name)).toEqual([])
  }, 600_000)

  it('a blackholed host: exit 4 within the connect timeout, one line naming the host', async () => {
    // accepts connections and never answers, like a host whose XAPI hangs
    const sockets: Socket[] = []
    const server: Server = createServer(socket => sockets.push(socket))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as { port: number }
    try {
      const config = join(lab.dir, 'blackhole.json')
      await writeFile(join(lab.dir, 'bh.password'), 'x', { mode: 0o600 })
      await writeFile(
        config,
        JSON.stringify({ pools: { bh: { url: `http://127.0.0.1:${port}`, passwordFile: 'bh.password' } } }),
      )
      const started = Date.now()
      let err = ''
      const code = await run(['--config', config, '--connect-timeout', '2', 'vms', 'bh'], {
        stdout: new Writable({ write: (_c, _e, done) => done() }),
        stderr: new Writable({
          write(chunk: Buffer, _e, done) {
            err += chunk.toString()
            done()
          },
        }),
        env: { HOME: lab.dir, XDG_CONFIG_HOME: lab.dir },
        cwd: lab.dir,
      })
      const seconds = (Date.now() - started) / 1000
      report.push({
        name: `blackholed host (--connect-timeout 2): ${seconds.toFixed(2)} s to exit`,
        expected: 'exit 4, one line naming the host',
        got: `exit ${code}: ${err.trim()}`,
        ok: code === 4 && err.trim().split('\n').length === 1 && err.includes(`127.0.0.1:${port}`),
      })
      expect(code).toBe(4)
      expect(err.trim().split('\n')).toHaveLength(1)
      expect(err).toContain(`http://127.0.0.1:${port}`)
      expect(err).toContain('within 2 s')
      expect(sockets.length).toBeGreaterThan(0)
    } finally {
      for (const socket of sockets) socket.destroy()
      server.close()
    }
  }, 60_000)
})

describe('Ctrl-C twice, with the real binary', () => {
  it('a second SIGINT during the cleanup says so and lets it finish: exit 1, nothing left', async () => {
    // Without the fix the second signal exited at once (130) in the middle of the cleanup and
    // left the half-imported disks on the target.
    const bin = builtBinary()
    const jobs = join(lab.dir, 'ctrl-c-jobs.json')
    const base = ['--config', lab.configPath, '--jobs-file', jobs]
    const created = await cli([
      ...base.slice(2),
      'job',
      'create',
      '--name',
      'cc',
      '--source',
      'src',
      '--target',
      'tgt',
      '--all-vms',
      '--interval',
      '1h',
    ])
    expect(created.code, created.err).toBe(0)
    lab.control.clearFaults()
    const before = new Set(await leftovers())
    // a slow first disk keeps the pass in its transfer; a slow destroy keeps it in its cleanup
    lab.control.injectFault('src', { kind: 'data-path', direction: 'export', bytesPerSecond: 256 * 1024, nth: 1 })
    lab.control.injectFault('tgt', { kind: 'latency', method: 'VDI.destroy', ms: 3_000, nth: 1 })
    const child = spawn(process.execPath, [bin, ...base, 'run', 'cc'], {
      cwd: lab.dir,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: lab.dir, XDG_CONFIG_HOME: lab.dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.stdout.resume()
    const exited = once(child, 'exit') as Promise<[number | null, string | null]>
    const until = async (what: string, done: () => boolean): Promise<void> => {
      for (let i = 0; !done(); i++) {
        if (child.exitCode !== null) throw new Error(`xen-cr exited before ${what}: ${stderr}`)
        if (i > 1_200) throw new Error(`still waiting for ${what} after 60 s: ${stderr}`)
        await sleep(50)
      }
    }
    const spent = (pool: Pool, kind: LabFault['kind']): boolean =>
      !lab.control.listFaults(pool).some(f => f.kind === kind)
    try {
      await until('the transfer started', () => spent('src', 'data-path'))
      child.kill('SIGINT')
      await until('the cleanup started destroying', () => spent('tgt', 'latency'))
      child.kill('SIGINT')
      const [code, signal] = await exited
      expect({ code, signal }).toEqual({ code: 1, signal: null })
      expect(stderr).toContain('SIGINT again: still removing what this run created')
      expect(stderr).toContain('[ABORTED]')
      // Tasks too: an aborted import released its task in the background, which the run's closing
      // client cut short (the task stayed in 2 of 8 runs before transfer.ts awaited it).
      expect((await leftovers()).filter(item => !before.has(item))).toEqual([])
      report.push({
        name: 'Ctrl-C twice (real binary)',
        expected: 'exit 1, cleanup finished',
        got: `exit ${code}`,
        ok: true,
      })
    } finally {
      child.kill('SIGKILL')
      lab.control.clearFaults()
    }
  }, 120_000)
})
