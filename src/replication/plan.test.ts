import { describe, expect, it } from 'vitest'
import { KEYS, PLACEHOLDER_DATETIME, START_BLOCKED_MESSAGE } from './metadata.js'
import {
  PlanRefusal,
  planVm,
  type PlanInput,
  type PlanSr,
  type PlanVbd,
  type PlanVdi,
  type PlanVm,
  type PoolRecords,
} from './plan.js'

const NULL = 'OpaqueRef:NULL'
const JOB = 'job-1'
const SCHED = 'sch-1'
const blocked = { start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE }

/** A tiny in-memory pool of records, enough to describe each scenario. */
class Pool implements PoolRecords {
  readonly vms = new Map<string, PlanVm>()
  readonly vbds = new Map<string, PlanVbd>()
  readonly vdis = new Map<string, PlanVdi>()
  readonly srs = new Map<string, PlanSr>()
  #n = 0
  constructor(private readonly prefix: string) {}
  #ref(kind: string): string {
    this.#n += 1
    return `OpaqueRef:${this.prefix}-${kind}-${this.#n}`
  }
  sr(uuid: string): string {
    const ref = this.#ref('sr')
    this.srs.set(ref, { uuid, name_label: `SR ${uuid}` })
    return ref
  }
  vm(name: string, fields: Partial<PlanVm> = {}): string {
    const ref = this.#ref('vm')
    this.vms.set(ref, {
      uuid: `${ref}-uuid`,
      name_label: name,
      power_state: 'Halted',
      is_a_snapshot: false,
      is_a_template: false,
      snapshot_of: NULL,
      other_config: {},
      blocked_operations: {},
      VBDs: [],
      ...fields,
    })
    return ref
  }
  disk(vmRef: string, sr: string, fields: Partial<PlanVdi> & { userdevice?: string } = {}): string {
    const vdiRef = this.#ref('vdi')
    const vbdRef = this.#ref('vbd')
    const { userdevice = '0', ...rest } = fields
    this.vdis.set(vdiRef, {
      uuid: `${vdiRef}-uuid`,
      name_label: `disk ${userdevice}`,
      SR: sr,
      snapshot_of: NULL,
      is_a_snapshot: false,
      other_config: {},
      virtual_size: 8 * 1024 * 1024,
      ...rest,
    })
    this.vbds.set(vbdRef, { VM: vmRef, VDI: vdiRef, type: 'Disk', userdevice })
    const vm = this.vms.get(vmRef)!
    this.vms.set(vmRef, { ...vm, VBDs: [...vm.VBDs, vbdRef] })
    return vdiRef
  }
  uuid(ref: string): string {
    return (this.vms.get(ref) ?? this.vdis.get(ref))!.uuid
  }
}

interface World {
  src: Pool
  tgt: Pool
  srcSr: string
  tgtSr: string
  vm: string
  disk0: string
}

function world(): World {
  const src = new Pool('s')
  const tgt = new Pool('t')
  const srcSr = src.sr('src-sr')
  const tgtSr = tgt.sr('tgt-sr')
  const vm = src.vm('web')
  const disk0 = src.disk(vm, srcSr)
  return { src, tgt, srcSr, tgtSr, vm, disk0 }
}

/** A source snapshot of `w.vm` with keys of `era`, one snapshot disk per live disk. */
function snapshot(
  w: World,
  datetime: string,
  opts: { era?: 'A' | 'B'; exported?: boolean; chain?: number; liveDisks?: string[] } = {},
): string {
  const { era = 'B', exported = true, chain } = opts
  const keys: Record<string, string> = {
    [KEYS.datetime]: datetime,
    [KEYS.job]: JOB,
    [KEYS.schedule]: SCHED,
    [KEYS.vm]: w.src.uuid(w.vm),
    ...(exported ? { [KEYS.exported]: 'true' } : {}),
    ...(chain === undefined ? {} : { [KEYS.deltaChainLength]: String(chain) }),
  }
  const snap = w.src.vm('[XO Backup j] web', {
    is_a_snapshot: true,
    is_a_template: true,
    snapshot_of: w.vm,
    other_config: keys,
  })
  for (const live of opts.liveDisks ?? [w.disk0]) {
    w.src.disk(snap, w.srcSr, { snapshot_of: live, is_a_snapshot: true, other_config: era === 'A' ? {} : keys })
  }
  return snap
}

/** A replica of `snap` on the target SR: VM keys plus disks with `xo:copy_of`. */
function replica(w: World, snap: string, datetime: string, fields: Partial<PlanVm> = {}, schedule = SCHED): string {
  const other_config = {
    [KEYS.copyOf]: w.src.uuid(snap),
    [KEYS.job]: JOB,
    [KEYS.schedule]: schedule,
    [KEYS.vm]: w.src.uuid(w.vm),
    [KEYS.sr]: 'tgt-sr',
    [KEYS.datetime]: datetime,
  }
  const r = w.tgt.vm(`web - j - (${datetime.replaceAll(':', '')})`, {
    blocked_operations: blocked,
    other_config,
    ...fields,
  })
  const snapVm = w.src.vms.get(snap)!
  for (const vbd of snapVm.VBDs) {
    const vdiRef = w.src.vbds.get(vbd)!.VDI
    w.tgt.disk(r, w.tgtSr, { other_config: { [KEYS.copyOf]: w.src.uuid(vdiRef) } })
  }
  return r
}

function input(w: World, over: Partial<PlanInput> = {}, job: Partial<PlanInput['job']> = {}, retention = 2): PlanInput {
  return {
    job: { id: JOB, name: 'j', fullInterval: 0, srs: ['tgt-sr'], ...job },
    schedule: { id: SCHED, retention },
    vmRef: w.vm,
    source: w.src,
    target: w.tgt,
    ...over,
  }
}

describe('planVm: base selection', () => {
  it('sends a full copy when the job never ran', () => {
    const w = world()
    const plan = planVm(input(w))
    expect(plan.mode).toBe('full')
    expect(plan.base).toBeUndefined()
    expect(plan.targets[0]?.disks).toMatchObject([{ mode: 'full', reason: 'no-base' }])
    expect(plan.nextDeltaChainLength).toBe(0)
    expect(plan.warnings).toEqual([])
  })

  it("continues an era-B chain with a delta onto the newest exported snapshot's replica", () => {
    const w = world()
    const old = snapshot(w, '20260101T00:00:00Z', { chain: 0 })
    replica(w, old, '20260101T00:00:05Z')
    const newest = snapshot(w, '20260102T00:00:00Z', { chain: 1 })
    const rep = replica(w, newest, '20260102T00:00:05Z')
    const plan = planVm(input(w))
    expect(plan.mode).toBe('delta')
    expect(plan.base?.ref).toBe(newest)
    expect(plan.base?.era).toBe('B')
    expect(plan.nextDeltaChainLength).toBe(2)
    const disk = plan.targets[0]?.disks[0]
    expect(disk?.mode).toBe('delta')
    expect(disk?.baseSnapshotVdi?.ref).toBe(w.src.vbds.get(w.src.vms.get(newest)!.VBDs[0]!)!.VDI)
    expect(disk?.targetBaseVdi?.ref).toBe(w.tgt.vbds.get(w.tgt.vms.get(rep)!.VBDs[0]!)!.VDI)
    expect(plan.targets[0]?.baseReplica?.ref).toBe(rep)
  })

  it('continues an era-A seed (VM-level keys only, as xo-cr-seed 1.0.2 writes) with a delta', () => {
    const w = world()
    const snap = snapshot(w, '20260101T00:00:00Z', { era: 'A' })
    replica(w, snap, '20260101T00:00:00Z')
    const plan = planVm(input(w))
    expect(plan.mode).toBe('delta')
    expect(plan.base?.era).toBe('A')
    expect(plan.nextDeltaChainLength).toBe(1)
  })

  it('uses an era-C target snapshot as base', () => {
    const w = world()
    const snap = snapshot(w, '20260101T00:00:00Z')
    replica(w, snap, '20260101T00:00:00Z', { is_a_snapshot: true, is_a_template: true, blocked_operations: {} })
    const plan = planVm(input(w))
    expect(plan.mode).toBe('delta')
  })

  it('skips a newer snapshot whose transfer never finished (no exported marker)', () => {
    const w = world()
    const good = snapshot(w, '20260101T00:00:00Z')
    replica(w, good, '20260101T00:00:05Z')
    const failed = snapshot(w, '20260102T00:00:00Z', { exported: false })
    const plan = planVm(input(w))
    expect(plan.base?.ref).toBe(good)
    expect(plan.deleteSnapshots.map(s => s.ref).sort()).toEqual([good, failed].sort())
  })

  it('never bases a delta on an interrupted replica (placeholder datetime)', () => {
    const w = world()
    const snap = snapshot(w, '20260101T00:00:00Z')
    const rep = replica(w, snap, PLACEHOLDER_DATETIME)
    const plan = planVm(input(w))
    expect(plan.mode).toBe('full')
    expect(plan.warnings.map(x => x.code)).toEqual(['BASE_MISSING_ON_TARGET'])
    expect(plan.targets[0]?.deleteReplicas.map(r => r.ref)).toEqual([rep])
  })

  it('sends a full copy, with a warning, when the base replica is running', () => {
    const w = world()
    const snap = snapshot(w, '20260101T00:00:00Z')
    replica(w, snap, '20260101T00:00:05Z', { power_state: 'Running' })
    const plan = planVm(input(w))
    expect(plan.mode).toBe('full')
    expect(plan.warnings.map(x => x.code)).toContain('REPLICA_NOT_SAFE_BASE')
  })

  it("sends a full copy, with a warning, when the base replica's start was unblocked", () => {
    const w = world()
    const snap = snapshot(w, '20260101T00:00:00Z')
    const rep = replica(w, snap, '20260101T00:00:05Z', { blocked_operations: {} })
    const plan = planVm(input(w))
    expect(plan.mode).toBe('full')
    expect(plan.warnings.map(x => x.code)).toContain('REPLICA_NOT_SAFE_BASE')
    // and it is someone's VM now: retention leaves it alone
    expect(plan.targets[0]?.deleteReplicas.map(r => r.ref)).not.toContain(rep)
  })

  it('sends only a new disk in full', () => {
    const w = world()
    const snap = snapshot(w, '20260101T00:00:00Z')
    replica(w, snap, '20260101T00:00:05Z')
    const disk1 = w.src.disk(w.vm, w.srcSr, { userdevice: '1' })
    const plan = planVm(input(w))
    expect(plan.mode).toBe('delta')
    expect(plan.targets[0]?.disks.map(d => [d.vdi.ref, d.mode, d.reason])).toEqual([
      [w.disk0, 'delta', undefined],
      [disk1, 'full', 'new-disk'],
    ])
    expect(plan.warnings.map(x => x.code)).toEqual(['DISK_WITHOUT_BASE'])
  })

  it('honours fullInterval like XO (full when fullInterval <= chain + 1)', () => {
    const w = world()
    const snap = snapshot(w, '20260101T00:00:00Z', { chain: 1 })
    replica(w, snap, '20260101T00:00:05Z')
    expect(planVm(input(w, {}, { fullInterval: 2 })).targets[0]?.disks[0]).toMatchObject({
      mode: 'full',
      reason: 'full-interval',
    })
    expect(planVm(input(w, {}, { fullInterval: 3 })).mode).toBe('delta')
    expect(planVm(input(w, {}, { fullInterval: 0 })).mode).toBe('delta')
    expect(planVm(input(w, { forceFull: true })).targets[0]?.disks[0]?.reason).toBe('forced')
  })

  it('plans each SR on its own: delta where the base is, full where it is not', () => {
    const w = world()
    const sr2 = w.tgt.sr('tgt-sr-2')
    expect(sr2).toBeTruthy()
    const snap = snapshot(w, '20260101T00:00:00Z')
    replica(w, snap, '20260101T00:00:05Z')
    const plan = planVm(input(w, {}, { srs: ['tgt-sr', 'tgt-sr-2'] }))
    expect(plan.targets.map(t => [t.sr.uuid, t.disks[0]?.mode])).toEqual([
      ['tgt-sr', 'delta'],
      ['tgt-sr-2', 'full'],
    ])
    expect(plan.mode).toBe('delta')
  })
})

describe('planVm: retention', () => {
  it("keeps retention − 1 replicas of this schedule and never touches other schedules' or unprotected ones", () => {
    const w = world()
    const reps: string[] = []
    for (let day = 1; day <= 4; day++) {
      const snap = snapshot(w, `2026010${day}T00:00:00Z`)
      reps.push(replica(w, snap, `2026010${day}T00:00:05Z`))
    }
    const otherSchedule = replica(w, snapshot(w, '20251231T00:00:00Z'), '20251231T00:00:05Z', {}, 'sch-2')
    const plan = planVm(input(w, {}, {}, 3))
    const deleted = plan.targets[0]?.deleteReplicas.map(r => r.ref)
    expect(deleted).toEqual([reps[1], reps[0]])
    expect(deleted).not.toContain(otherSchedule)
    expect(plan.targets[0]?.baseReplica?.ref).toBe(reps[3])
  })

  it('deletes every older snapshot of this job, never a snapshot someone else took', () => {
    const w = world()
    const a = snapshot(w, '20260101T00:00:00Z')
    const b = snapshot(w, '20260102T00:00:00Z')
    const foreign = w.src.vm('manual', { is_a_snapshot: true, snapshot_of: w.vm })
    const plan = planVm(input(w))
    expect(plan.deleteSnapshots.map(s => s.ref).sort()).toEqual([a, b].sort())
    expect(plan.deleteSnapshots.map(s => s.ref)).not.toContain(foreign)
  })
})

describe('planVm: refusals', () => {
  it('refuses a replica made by this very job', () => {
    const w = world()
    const rep = w.src.vm('replica', { other_config: { [KEYS.job]: JOB }, blocked_operations: blocked })
    expect(() => planVm(input(w, { vmRef: rep }))).toThrow(PlanRefusal)
  })

  it('refuses an SR that is not on the target', () => {
    const w = world()
    expect(() => planVm(input(w, {}, { srs: ['nope'] }))).toThrow(/SR nope/)
  })
})

/**
 * An XVA export of a snapshot imports as a template, and xo-cr-seed 1.0.2 keys it without making
 * it a VM (issue 10): without adoption the seed was skipped and the pass sent a full copy, with a
 * warning that named no reason.
 */
describe('planVm: a seeded template', () => {
  /** The copy of `snap` as xo-cr-seed leaves an XVA import of it: a template with its keys. */
  function seededTemplate(w: World, snap: string, fields: Partial<PlanVm> = {}): string {
    return replica(w, snap, '20260101T00:00:00Z', { is_a_template: true, ...fields })
  }

  it('adopts the template carrying this job keys as the base: the pass is a delta', () => {
    const w = world()
    const snap = snapshot(w, '20260101T00:00:00Z', { era: 'A' })
    const seed = seededTemplate(w, snap)
    const plan = planVm(input(w, {}, {}, 1))
    expect(plan.mode).toBe('delta')
    expect(plan.base?.ref).toBe(snap)
    expect(plan.targets[0]).toMatchObject({ baseReplica: { ref: seed }, adoptBase: true })
    expect(plan.warnings).toEqual([])
    // adopted, it is one of the job's replicas: retention 1 rotates it after the new one
    expect(plan.targets[0]?.deleteReplicas.map(r => r.ref)).toEqual([seed])
  })

  it('prefers a complete replica of the same snapshot to a template', () => {
    const w = world()
    const snap = snapshot(w, '20260101T00:00:00Z')
    seededTemplate(w, snap)
    const rep = replica(w, snap, '20260101T00:00:05Z')
    const plan = planVm(input(w))
    expect(plan.targets[0]?.baseReplica?.ref).toBe(rep)
    expect(plan.targets[0]?.adoptBase).toBeUndefined()
  })

  const fullWith = (w: World): string => {
    const plan = planVm(input(w))
    expect(plan.mode).toBe('full')
    expect(plan.targets[0]?.adoptBase).toBeUndefined()
    expect(plan.warnings).toHaveLength(1)
    return plan.warnings[0]!.message
  }

  it('never adopts a template whose start is not blocked, and says so', () => {
    const w = world()
    seededTemplate(w, snapshot(w, '20260101T00:00:00Z'), { blocked_operations: {} })
    expect(fullWith(w)).toMatch(/template .* does not have its start blocked/)
  })

  it("never adopts a template of another job's, and names that job", () => {
    const w = world()
    const snap = snapshot(w, '20260101T00:00:00Z')
    const t = seededTemplate(w, snap)
    const rec = w.tgt.vms.get(t)!
    w.tgt.vms.set(t, { ...rec, other_config: { ...rec.other_config, [KEYS.job]: 'job-2', [KEYS.schedule]: 'sch-2' } })
    expect(fullWith(w)).toMatch(/carries job job-2 \/ schedule sch-2, not job-1 \/ sch-1/)
  })

  it('names the SR when the copy is on another SR', () => {
    const w = world()
    const snap = snapshot(w, '20260101T00:00:00Z')
    const t = seededTemplate(w, snap)
    const rec = w.tgt.vms.get(t)!
    w.tgt.vms.set(t, { ...rec, other_config: { ...rec.other_config, [KEYS.sr]: 'other-sr' } })
    expect(fullWith(w)).toMatch(/xo:backup:sr other-sr, not this SR/)
  })

  it('names missing disk keys', () => {
    const w = world()
    const snap = snapshot(w, '20260101T00:00:00Z')
    const t = seededTemplate(w, snap)
    for (const vbd of w.tgt.vms.get(t)!.VBDs) {
      const vdiRef = w.tgt.vbds.get(vbd)!.VDI
      w.tgt.vdis.set(vdiRef, { ...w.tgt.vdis.get(vdiRef)!, other_config: {} })
    }
    expect(fullWith(w)).toMatch(/disk keys missing/)
  })

  it('names a copy that no VM or template carries', () => {
    const w = world()
    snapshot(w, '20260101T00:00:00Z')
    expect(fullWith(w)).toMatch(/no VM or template carries xo:copy_of=/)
  })

  it('names a base snapshot gone on the source', () => {
    const w = world()
    const snap = snapshot(w, '20260101T00:00:00Z')
    replica(w, snap, '20260101T00:00:05Z')
    w.src.vms.delete(snap)
    const plan = planVm(input(w))
    expect(plan.mode).toBe('full')
    expect(plan.warnings).toMatchObject([{ code: 'BASE_SNAPSHOT_GONE' }])
    expect(plan.warnings[0]?.message).toMatch(/gone on the source/)
  })
})
