import { describe, expect, it } from 'vitest'
import { KEYS, REPLICA_TAG, START_BLOCKED_MESSAGE } from '../metadata.js'
import { checkSeedIds, planSeed, type SeedRecords, type SeedRequest, type SeedVdi, type SeedVm } from './plan-seed.js'

const U = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`
const JOB = U(900)
const SCHEDULE = U(901)
const SR = U(800)

function vm(over: Partial<SeedVm> & { uuid: string }): SeedVm {
  return {
    name_label: 'vm',
    power_state: 'Halted',
    is_a_snapshot: false,
    is_a_template: false,
    is_control_domain: false,
    snapshot_of: 'OpaqueRef:NULL',
    snapshot_time: '19700101T00:00:00Z',
    other_config: {},
    blocked_operations: {},
    tags: [],
    VBDs: [],
    ha_always_run: false,
    ha_restart_priority: '',
    ...over,
  }
}

function vdi(uuid: string, size: number, over: Partial<SeedVdi> = {}): SeedVdi {
  return {
    uuid,
    name_label: `disk ${uuid.slice(-2)}`,
    SR: 'sr',
    virtual_size: size,
    other_config: {},
    VBDs: [],
    ...over,
  }
}

/** Source pool: VM `web` with a snapshot of two disks; target pool: a halted copy with the same disks on SR. */
function pools(options: { targetSizes?: number[]; targetDevices?: string[] } = {}): {
  source: SeedRecords
  target: SeedRecords
} {
  const sizes = [16 << 20, 8 << 20]
  const source: SeedRecords = {
    vms: new Map([
      ['vm', vm({ uuid: U(1), name_label: 'web', power_state: 'Running' })],
      [
        'snap',
        vm({
          uuid: U(2),
          name_label: 'web snap',
          is_a_snapshot: true,
          is_a_template: true,
          snapshot_of: 'vm',
          snapshot_time: '20260101T10:20:30Z',
          VBDs: ['sb0', 'sb1'],
        }),
      ],
    ]),
    vbds: new Map([
      ['sb0', { VM: 'snap', VDI: 'sd0', type: 'Disk', userdevice: '0' }],
      ['sb1', { VM: 'snap', VDI: 'sd1', type: 'Disk', userdevice: '1' }],
    ]),
    vdis: new Map([
      ['sd0', vdi(U(10), sizes[0]!, { VBDs: ['sb0'] })],
      ['sd1', vdi(U(11), sizes[1]!, { VBDs: ['sb1'] })],
    ]),
    srs: new Map([['srcsr', { uuid: U(700), name_label: 'Local' }]]),
  }
  const tSizes = options.targetSizes ?? sizes
  const devices = options.targetDevices ?? ['0', '1']
  const target: SeedRecords = {
    vms: new Map([['copy', vm({ uuid: U(3), name_label: 'web copy', VBDs: devices.map((_, i) => `tb${i}`) })]]),
    vbds: new Map(devices.map((d, i) => [`tb${i}`, { VM: 'copy', VDI: `td${i}`, type: 'Disk', userdevice: d }])),
    vdis: new Map(devices.map((_, i) => [`td${i}`, vdi(U(20 + i), tSizes[i]!, { VBDs: [`tb${i}`] })])),
    srs: new Map([['sr', { uuid: SR, name_label: 'Replica A' }]]),
  }
  return { source, target }
}

const request = (over: Partial<SeedRequest> = {}): SeedRequest => ({
  job: { id: JOB, name: 'nightly', srs: [SR], vms: { uuids: [U(1)], tags: [], all: false } },
  scheduleId: SCHEDULE,
  snapshotUuid: U(2),
  targetVmUuid: U(3),
  ...over,
})

/** The records after applying a plan's changes (what XAPI would hold). */
function applied(
  p: { source: SeedRecords; target: SeedRecords },
  plan: ReturnType<typeof planSeed>,
): { source: SeedRecords; target: SeedRecords } {
  const next = {
    source: { ...p.source, vms: new Map(p.source.vms), vdis: new Map(p.source.vdis) },
    target: { ...p.target, vms: new Map(p.target.vms), vdis: new Map(p.target.vdis) },
  }
  for (const c of plan.changes) {
    const pool = next[c.side]
    if (c.cls === 'VDI') {
      const r = pool.vdis.get(c.object.ref)!
      pool.vdis.set(c.object.ref, { ...r, other_config: { ...r.other_config, ...c.otherConfig } })
    } else {
      const r = pool.vms.get(c.object.ref)!
      pool.vms.set(c.object.ref, {
        ...r,
        other_config: { ...r.other_config, ...c.otherConfig },
        name_label: c.nameLabel ?? r.name_label,
        blocked_operations: { ...r.blocked_operations, ...c.blockedOperations },
        tags: [...r.tags, ...(c.addTags ?? [])],
        is_a_template: c.clearIsATemplate === true ? false : r.is_a_template,
      })
    }
  }
  return next
}

describe('planSeed', () => {
  it('writes what a completed era-B pass writes, pairing disks by userdevice, with the snapshot time as datetime', () => {
    const p = pools()
    const plan = planSeed(request(), p.source, p.target, { samePool: false })
    expect(plan.datetime).toBe('20260101T10:20:30Z')
    expect(plan.replicaName).toBe('web - nightly - (20260101T102030Z)')
    expect(plan.pairs.map(x => [x.userdevice, x.source.uuid, x.target.uuid])).toEqual([
      ['0', U(10), U(20)],
      ['1', U(11), U(21)],
    ])
    const id = { [KEYS.job]: JOB, [KEYS.schedule]: SCHEDULE, [KEYS.vm]: U(1), [KEYS.datetime]: '20260101T10:20:30Z' }
    const byObject = new Map(plan.changes.map(c => [c.object.uuid, c]))
    expect(byObject.get(U(20))?.otherConfig).toEqual({
      ...id,
      [KEYS.copyOf]: U(10),
      [KEYS.contentKey]: U(10),
      [KEYS.sr]: SR,
    })
    const replica = byObject.get(U(3))!
    expect(replica.otherConfig).toEqual({ ...id, [KEYS.copyOf]: U(2), [KEYS.sr]: SR, [KEYS.deltaChainLength]: '0' })
    // the datetime goes last: it is what marks a replica complete
    expect(Object.keys(replica.otherConfig).at(-1)).toBe(KEYS.datetime)
    expect(replica.blockedOperations).toEqual({ start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE })
    expect(replica.addTags).toEqual([REPLICA_TAG])
    expect(byObject.get(U(10))?.otherConfig).toEqual({
      ...id,
      [KEYS.contentKey]: U(10),
      [KEYS.deltaChainLength]: '0',
      [KEYS.exported]: 'true',
    })
    const snapshot = byObject.get(U(2))!
    expect(snapshot).toMatchObject({ nameLabel: '[XO Backup nightly] web', clearIsATemplate: true })
    // the source snapshot, with its exported marker, is written last of all
    expect(plan.changes.at(-1)).toBe(snapshot)
    expect(Object.keys(snapshot.otherConfig).at(-1)).toBe(KEYS.exported)
  })

  it('is idempotent: planning again on the written records changes nothing', () => {
    const p = pools()
    const first = planSeed(request(), p.source, p.target, { samePool: false })
    const second = planSeed(request(), applied(p, first).source, applied(p, first).target, { samePool: false })
    expect(second.changes).toEqual([])
    expect(second.datetime).toBe(first.datetime)
  })

  it('completes an xo-cr-seed seed (VM-level keys) keeping its datetime', () => {
    const p = pools()
    const snap = p.source.vms.get('snap')!
    const xo = {
      [KEYS.datetime]: '20251231T23:59:59Z',
      [KEYS.job]: JOB,
      [KEYS.schedule]: SCHEDULE,
      [KEYS.vm]: U(1),
      [KEYS.exported]: 'true',
    }
    const source = { ...p.source, vms: new Map([...p.source.vms, ['snap', { ...snap, other_config: xo }]]) }
    const plan = planSeed(request(), source, p.target, { samePool: false })
    expect(plan.datetime).toBe('20251231T23:59:59Z')
    expect(plan.changes.find(c => c.object.uuid === U(2))?.otherConfig).toEqual({ [KEYS.deltaChainLength]: '0' })
  })

  // An XVA export of a snapshot imports as a template (XAPI does it): the seed used to refuse the
  // very copy the procedure told the user to give, with SEED_TARGET_NOT_A_VM (issue 10).
  it('accepts a template copy (the XVA import of the snapshot) and makes it a VM, idempotently', () => {
    const p = pools()
    const copy = p.target.vms.get('copy')!
    const target = { ...p.target, vms: new Map([['copy', { ...copy, is_a_template: true }]]) }
    const plan = planSeed(request(), p.source, target, { samePool: false })
    const replica = plan.changes.find(c => c.object.uuid === U(3))!
    expect(replica).toMatchObject({
      clearIsATemplate: true,
      blockedOperations: { start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE },
    })
    const again = planSeed(
      request(),
      applied({ source: p.source, target }, plan).source,
      applied({ source: p.source, target }, plan).target,
      {
        samePool: false,
      },
    )
    expect(again.changes).toEqual([])
  })

  it('refuses with a stable code for each problem', () => {
    const code = (fn: () => unknown): string => {
      try {
        fn()
      } catch (error) {
        return (error as { code: string; category: string }).category === 'validation'
          ? (error as { code: string }).code
          : 'not a validation error'
      }
      return 'accepted'
    }
    const p = pools()
    expect(code(() => checkSeedIds({ snapshot: 'x', targetVm: U(3) }))).toBe('SEED_ID_INVALID')
    expect(code(() => planSeed(request({ snapshotUuid: U(1) }), p.source, p.target, { samePool: false }))).toBe(
      'SEED_NOT_A_SNAPSHOT',
    )
    expect(
      code(() =>
        planSeed(
          request({ job: { id: JOB, name: 'n', srs: [SR], vms: { uuids: [], tags: ['db'], all: false } } }),
          p.source,
          p.target,
          { samePool: false },
        ),
      ),
    ).toBe('SEED_VM_NOT_IN_JOB')
    expect(
      code(() =>
        planSeed(request({ job: { id: JOB, name: 'n', srs: [U(801)] } }), p.source, p.target, { samePool: false }),
      ),
    ).toBe('SEED_SR_NOT_IN_JOB')
    const bigger = pools({ targetSizes: [16 << 20, 10 << 20] })
    expect(code(() => planSeed(request(), bigger.source, bigger.target, { samePool: false }))).toBe(
      'SEED_DISKS_MISMATCH',
    )
    const shifted = pools({ targetDevices: ['0', '2'] })
    expect(code(() => planSeed(request(), shifted.source, shifted.target, { samePool: false }))).toBe(
      'SEED_DISKS_MISMATCH',
    )
    const one = pools({ targetDevices: ['0'] })
    expect(code(() => planSeed(request(), one.source, one.target, { samePool: false }))).toBe('SEED_DISKS_MISMATCH')
    const running = { ...p.target, vms: new Map([['copy', { ...p.target.vms.get('copy')!, power_state: 'Running' }]]) }
    expect(code(() => planSeed(request(), p.source, running, { samePool: false }))).toBe('SEED_TARGET_NOT_HALTED')
    // no job store entry: the SR and VM checks are skipped, with a warning
    const outside = planSeed(request({ job: { id: JOB } }), p.source, p.target, { samePool: false })
    expect(outside.warnings.map(w => w.code)).toEqual(['SEED_JOB_NOT_IN_STORE'])
    expect(outside.replicaName).toBe(`web - ${JOB} - (20260101T102030Z)`)
  })
})
