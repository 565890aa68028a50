/**
 * `xen-cr health-check` and the job setting that runs it after each pass, against the lab: a
 * pass (guest tools report), a failure (a guest without tools), a timeout (tools later than the
 * budget), the guest script's verdict in XenStore (success, failure, none), an interrupt while
 * waiting — and after every case no clone left on the target (VMs and VDIs counted) and the
 * replica as it was.
 */
import { Writable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import type { HealthCheckStep, HealthCheckVmResult } from '../../src/recovery/check-events.js'
import {
  counts,
  eventOf,
  events,
  pass,
  plainVms,
  replicaState,
  replicasOf,
  startRecoveryFixture,
  type Event,
  type RecoveryFixture,
} from './recovery-fixture.js'

let f: RecoveryFixture | undefined
afterEach(async () => {
  await f?.close()
  f = undefined
})

const t0 = new Date(Date.UTC(2026, 7, 21, 12, 0, 0))
const XENSTORE_TAG = 'xo-backup-health-check-xenstore'

type Results = Record<string, HealthCheckVmResult>

function byVm(out: string, kind = 'health-check-done'): Results {
  const done = eventOf<{ results: HealthCheckVmResult[] }>(out, kind)
  return Object.fromEntries(done.results.map(r => [r.vm.name, r]))
}

function errorOf(result: HealthCheckVmResult | undefined): { code: string; message: string } | undefined {
  return result?.error
}

/** What must be the same before and after any health check: object counts, no test VM, the replicas. */
async function snapshotOfTarget(fx: RecoveryFixture): Promise<unknown> {
  const replicas = [...(await replicasOf(fx, fx.vmUuid)), ...(await replicasOf(fx, fx.dbUuid))]
  return {
    counts: await counts(fx.target),
    testVms: [...(await plainVms(fx.target)).values()].filter(v => v.name_label.startsWith('Health Check')).length,
    replicas: await Promise.all(replicas.map(([ref]) => replicaState(fx.target, ref))),
  }
}

/** Sets what a source VM's guest does; its replicas (and their clones) inherit it. */
function guest(fx: RecoveryFixture, vm: string, setting: Parameters<RecoveryFixture['lab']['control']['setGuest']>[2]) {
  fx.lab.control.setGuest('src', vm, setting)
}

describe('xen-cr health-check', () => {
  it('passes when the guest tools of the booted clone report, then removes the clone; the replicas are untouched', async () => {
    const fx = await startRecoveryFixture()
    f = fx
    guest(fx, fx.vmUuid, { tools: 200 })
    guest(fx, fx.dbUuid, { tools: 100 })
    await pass(fx, t0, 'full')
    const before = await snapshotOfTarget(fx)

    const checked = await fx.cli(['--json', 'health-check', 'nightly', '--timeout', '30s'])
    expect(checked.err).toBe('')
    expect(checked.code).toBe(0)
    const results = byVm(checked.out)
    for (const name of ['web', 'db']) {
      const result = results[name]!
      expect(result).toMatchObject({ status: 'success', via: 'clone', mode: 'tools', cleanedUp: true })
      expect(result.status !== 'refused' && result.clone?.name).toBe(
        `Health Check - ${name} - nightly - (20260821T120000Z)`,
      )
      expect(result.status !== 'refused' && result.reached.tools).toBeGreaterThanOrEqual(name === 'web' ? 200 : 100)
    }
    const steps = events(checked.out)
      .filter(e => e.kind === 'health-check-step' && (e as unknown as { vm: { name: string } }).vm.name === 'web')
      .map(e => (e as Event & { step: HealthCheckStep }).step)
    expect(steps).toEqual(['cloning', 'starting', 'running', 'tools', 'destroying'])
    expect(await snapshotOfTarget(fx)).toEqual(before)

    const human = await fx.cli(['health-check', 'nightly', '--vm', 'web'])
    expect(human.code).toBe(0)
    expect(human.out).toMatch(
      /(?:✓|ok) web: health check passed \(running after [\d.]+s, guest tools after [\d.]+s\); the clone was removed/,
    )
    expect(human.out).toContain('1 of 1 VM of job "nightly" passed the health check')
    expect(await snapshotOfTarget(fx)).toEqual(before)
  })

  it('fails a VM whose guest has no tools, and one whose tools report after the budget; no clone is left', async () => {
    const fx = await startRecoveryFixture()
    f = fx
    guest(fx, fx.dbUuid, { tools: 'never' })
    guest(fx, fx.vmUuid, { tools: 60_000 })
    await pass(fx, t0, 'full')
    const before = await snapshotOfTarget(fx)

    const started = Date.now()
    const checked = await fx.cli(['--json', 'health-check', 'nightly', '--timeout', '2s'])
    const took = Date.now() - started
    expect(checked.code).toBe(1)
    const results = byVm(checked.out)
    for (const name of ['db', 'web']) {
      expect(results[name]).toMatchObject({ status: 'failed', cleanedUp: true })
      expect(errorOf(results[name])?.code).toBe('HEALTH_CHECK_NO_TOOLS')
      expect(errorOf(results[name])?.message).toMatch(/^no guest tools reported within 2s/)
      expect(results[name]?.status !== 'refused' && results[name]?.reached.running).toBeGreaterThanOrEqual(0)
    }
    // the budget, not the 60 s the tools would have taken
    expect(took).toBeLessThan(30_000)
    expect(await snapshotOfTarget(fx)).toEqual(before)

    const human = await fx.cli(['health-check', 'nightly', '--vm', 'db', '--timeout', '1s'])
    expect(human.code).toBe(1)
    expect(human.err).toMatch(
      /(?:✗|FAILED) db: health check failed: no guest tools reported within 1s.*the clone was removed \[HEALTH_CHECK_NO_TOOLS\]/,
    )
    expect(await snapshotOfTarget(fx)).toEqual(before)
  })

  it("waits for the guest script's verdict in XenStore: success, failure with its message, and none", async () => {
    const fx = await startRecoveryFixture()
    f = fx
    // web asks for script mode by its tag, which its replicas carry; db's check is asked by --xenstore
    await fx.source.call('VM.add_tags', [fx.vmRef, XENSTORE_TAG])
    guest(fx, fx.vmUuid, { tools: 100, healthCheck: { result: 'success', delayMs: 300 } })
    guest(fx, fx.dbUuid, { tools: 100, healthCheck: { result: 'failure', error: 'fsck found 3 errors on /var' } })
    await pass(fx, t0, 'full')
    const before = await snapshotOfTarget(fx)

    const tagged = await fx.cli(['--json', 'health-check', 'nightly'])
    expect(tagged.code).toBe(0)
    const byTag = byVm(tagged.out)
    expect(byTag['web']).toMatchObject({ status: 'success', mode: 'xenstore', cleanedUp: true })
    const reached = byTag['web']?.status === 'success' ? byTag['web'].reached : {}
    // the verdict comes 300 ms after the tools; both are seen at a poll (every second)
    expect(reached.verdict).toBeGreaterThanOrEqual(reached.tools ?? Number.POSITIVE_INFINITY)
    // db has no tag: its tools are enough
    expect(byTag['db']).toMatchObject({ status: 'success', mode: 'tools' })
    expect(await snapshotOfTarget(fx)).toEqual(before)

    const scripted = await fx.cli(['--json', 'health-check', 'nightly', '--xenstore'])
    expect(scripted.code).toBe(1)
    const results = byVm(scripted.out)
    expect(results['web']).toMatchObject({ status: 'success', mode: 'xenstore' })
    expect(results['db']).toMatchObject({ status: 'failed', mode: 'xenstore', cleanedUp: true })
    expect(errorOf(results['db'])).toEqual({
      code: 'HEALTH_CHECK_SCRIPT_FAILED',
      message: "the guest's health-check script reported failure: fsck found 3 errors on /var",
    })
    expect(await snapshotOfTarget(fx)).toEqual(before)

    // a guest without the script leaves `planned` as it was: no verdict within the budget
    guest(fx, fx.vmUuid, { tools: 100 })
    await pass(fx, new Date(t0.getTime() + 3_600_000), 'delta', [fx.vmUuid])
    const afterPass = await snapshotOfTarget(fx)
    const silent = await fx.cli(['--json', 'health-check', 'nightly', '--vm', 'web', '--timeout', '2s'])
    expect(silent.code).toBe(1)
    expect(errorOf(byVm(silent.out)['web'])?.code).toBe('HEALTH_CHECK_NO_VERDICT')
    expect(errorOf(byVm(silent.out)['web'])?.message).toMatch(/within 2s \(it reads "planned"\)/)
    expect(await snapshotOfTarget(fx)).toEqual(afterPass)
  })

  it('copies the replica when its SR cannot clone, and removes the test VM when its start fails', async () => {
    const fx = await startRecoveryFixture()
    f = fx
    guest(fx, fx.vmUuid, { tools: 100 })
    await pass(fx, t0, 'full', [fx.vmUuid])
    const before = await snapshotOfTarget(fx)

    fx.lab.control.injectFault('tgt', {
      kind: 'error',
      method: 'VM.clone',
      code: 'SR_OPERATION_NOT_SUPPORTED',
      params: [],
      nth: 1,
    })
    const copied = await fx.cli(['--json', 'health-check', 'nightly', '--vm', 'web', '--sr', fx.srs['Replica A']!])
    expect(copied.code).toBe(0)
    expect(byVm(copied.out)['web']).toMatchObject({ status: 'success', via: 'copy', cleanedUp: true })
    const warnings = events(copied.out).filter(e => e.kind === 'warning') as (Event & { code: string })[]
    expect(warnings.map(w => w.code)).toEqual(['CLONE_NOT_SUPPORTED'])
    expect(await snapshotOfTarget(fx)).toEqual(before)

    fx.lab.control.injectFault('tgt', {
      kind: 'error',
      method: 'VM.start',
      code: 'HOST_NOT_ENOUGH_FREE_MEMORY',
      params: ['1', '0'],
      nth: 1,
    })
    const unstarted = await fx.cli(['--json', 'health-check', 'nightly', '--vm', 'web'])
    expect(unstarted.code).toBe(1)
    expect(byVm(unstarted.out)['web']).toMatchObject({
      status: 'failed',
      via: 'clone',
      cleanedUp: true,
      error: { code: 'XAPI_HOST_NOT_ENOUGH_FREE_MEMORY' },
    })
    expect(await snapshotOfTarget(fx)).toEqual(before)
  })

  it('removes the clone when interrupted while waiting (the SIGINT path: the run signal aborts)', async () => {
    const fx = await startRecoveryFixture()
    f = fx
    guest(fx, fx.vmUuid, { tools: 'never' })
    await pass(fx, t0, 'full', [fx.vmUuid])
    const before = await snapshotOfTarget(fx)
    const controller = new AbortController()
    let out = ''
    const stdout = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out += chunk.toString()
        // abort once the clone runs and its tools are awaited
        if (out.includes('"step":"tools"')) controller.abort()
        callback()
      },
    })
    const stderr = new Writable({ write: (_chunk, _encoding, callback) => callback() })
    const code = await run(['--config', fx.lab.configPath, '--json', 'health-check', 'nightly', '--vm', 'web'], {
      stdout,
      stderr,
      env: { HOME: fx.lab.dir, XDG_CONFIG_HOME: fx.lab.dir },
      cwd: fx.lab.dir,
      signal: controller.signal,
    })
    expect(controller.signal.aborted).toBe(true)
    expect(code).toBe(1)
    const result = byVm(out)['web']
    expect(result).toMatchObject({ status: 'failed', cleanedUp: true, error: { code: 'ABORTED' } })
    expect(await snapshotOfTarget(fx)).toEqual(before)
  })

  it('refuses a job without replicas (NO_REPLICA) and an unknown --sr (SR_NOT_FOUND), exit 5, creating nothing', async () => {
    const fx = await startRecoveryFixture()
    f = fx
    const before = await counts(fx.target)
    const none = await fx.cli(['--json', 'health-check', 'nightly'])
    expect(none.code).toBe(5)
    expect(Object.values(byVm(none.out)).map(r => errorOf(r)?.code)).toEqual(['NO_REPLICA', 'NO_REPLICA'])
    const sr = await fx.cli(['health-check', 'nightly', '--sr', '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0999'])
    expect(sr.code).toBe(5)
    expect(sr.err).toMatch(
      /SR 0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0999 \(health-check SR\) is not on target pool "tgt".*\[SR_NOT_FOUND\]/,
    )
    expect(await counts(fx.target)).toEqual(before)
  })
})

describe('the job setting healthCheck', () => {
  it('runs the health check after each pass for the VMs it replicated; a failed check fails the run', async () => {
    const fx = await startRecoveryFixture()
    f = fx
    guest(fx, fx.vmUuid, { tools: 100 })
    guest(fx, fx.dbUuid, { tools: 'never' })
    const created = await fx.cli([
      'job',
      'create',
      '--name',
      'checked',
      '--source',
      'src',
      '--target',
      'tgt',
      '--sr',
      fx.srs['Replica A']!,
      '--vm',
      fx.vmUuid,
      fx.dbUuid,
      '--interval',
      '1h',
      '--health-check-timeout',
      '2s',
    ])
    expect(created.err).toBe('')
    expect(created.code).toBe(0)
    expect(created.out).toContain('health check: after each pass, 2s budget, clone beside the replica')

    const ran = await fx.cli(['--json', 'run', 'checked'], { now: t0 })
    expect(ran.code).toBe(1)
    const done = events(ran.out).filter(e => e.kind === 'vm-done') as unknown as { result: { status: string } }[]
    expect(done.map(e => e.result.status)).toEqual(['success', 'success'])
    const results = byVm(ran.out)
    expect(results['web']).toMatchObject({ status: 'success', cleanedUp: true })
    expect(results['db']).toMatchObject({ status: 'failed', cleanedUp: true, error: { code: 'HEALTH_CHECK_NO_TOOLS' } })
    const testVms = [...(await plainVms(fx.target)).values()].filter(v => v.name_label.startsWith('Health Check'))
    expect(testVms).toEqual([])

    // only the VMs the pass replicated are checked; the job without the setting checks nothing
    const one = await fx.cli(['--json', 'run', 'checked', '--vm', fx.vmUuid], {
      now: new Date(t0.getTime() + 3_600_000),
    })
    expect(one.code).toBe(0)
    expect(Object.keys(byVm(one.out))).toEqual(['web'])
    const plain = await fx.cli(['--json', 'run', 'nightly'], { now: t0 })
    expect(plain.code).toBe(0)
    expect(events(plain.out).some(e => e.kind.startsWith('health-check'))).toBe(false)
  })
})
