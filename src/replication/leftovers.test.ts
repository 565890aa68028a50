import { describe, expect, it } from 'vitest'
import {
  findLeftovers,
  type LeftoverRecords,
  type LeftoverTaskRecord,
  type LeftoverVdiRecord,
  type LeftoverVmRecord,
} from './leftovers.js'
import {
  IMPORTING_BLOCKED_MESSAGE,
  KEYS,
  PLACEHOLDER_DATETIME,
  START_BLOCKED_MESSAGE,
  TEMP_SNAPSHOT_NAME,
} from './metadata.js'

// Why: cleanup used to consider only VMs whose start was blocked, so an "[Importing…]" VM killed
// before its start was blocked, clones attached to nothing and a rotation's snapshot disks stayed
// for good. Leftovers are now found by the job's keys; these cases pin what is and is not one.
const JOB = 'job-1'
const VM_UUID = 'vm-web'
/** a source snapshot's keys (no `xo:backup:sr`) */
const snapKeys = (over: Record<string, string> = {}): Record<string, string> => ({
  [KEYS.job]: JOB,
  [KEYS.schedule]: 'sch-1',
  [KEYS.vm]: VM_UUID,
  ...over,
})
/** a replica's keys */
const keys = (over: Record<string, string> = {}): Record<string, string> => ({
  [KEYS.job]: JOB,
  [KEYS.schedule]: 'sch-1',
  [KEYS.vm]: VM_UUID,
  [KEYS.sr]: 'sr-1',
  ...over,
})

function vm(uuid: string, over: Partial<LeftoverVmRecord> = {}): LeftoverVmRecord {
  return {
    uuid,
    name_label: uuid,
    power_state: 'Halted',
    is_a_snapshot: false,
    is_a_template: false,
    snapshot_of: 'OpaqueRef:NULL',
    snapshots: [],
    other_config: {},
    blocked_operations: {},
    ...over,
  }
}

function task(uuid: string, name_label: string, status: string, result = ''): LeftoverTaskRecord {
  return { uuid, name_label, status, result }
}

function vdi(uuid: string, over: Partial<LeftoverVdiRecord> = {}): LeftoverVdiRecord {
  return { uuid, name_label: uuid, is_a_snapshot: false, managed: true, VBDs: [], other_config: {}, ...over }
}

const source: LeftoverRecords = {
  vms: new Map([
    ['r-web', vm(VM_UUID, { power_state: 'Running' })],
    ['r-other', vm('vm-other', { power_state: 'Running' })],
    // a base snapshot
    [
      'r-s1',
      vm('s1', {
        is_a_snapshot: true,
        snapshot_of: 'r-web',
        other_config: snapKeys({ [KEYS.datetime]: '20261201T00:00:00Z', [KEYS.exported]: 'true' }),
      }),
    ],
    // the pass stopped after its replica was complete, before marking the snapshot exported
    [
      'r-s2',
      vm('s2', {
        is_a_snapshot: true,
        snapshot_of: 'r-web',
        other_config: snapKeys({ [KEYS.datetime]: '20261201T01:00:00Z' }),
      }),
    ],
    // the pass stopped before any replica was complete
    [
      'r-s3',
      vm('s3', {
        is_a_snapshot: true,
        snapshot_of: 'r-web',
        other_config: snapKeys({ [KEYS.datetime]: '20261201T02:00:00Z' }),
      }),
    ],
    // killed between VM.snapshot and the keys
    ['r-tmp', vm('tmp', { is_a_snapshot: true, snapshot_of: 'r-web', name_label: TEMP_SNAPSHOT_NAME })],
    // XO's (or another tool's) temporary snapshot of a VM this job does not replicate
    ['r-tmp-other', vm('tmp-other', { is_a_snapshot: true, snapshot_of: 'r-other', name_label: TEMP_SNAPSHOT_NAME })],
  ]),
  vdis: new Map([
    // a rotation killed after the snapshot VM went (the old order)
    ['d-snap', vdi('snap-disk', { is_a_snapshot: true, other_config: snapKeys() })],
    ['d-attached', vdi('attached', { VBDs: ['vbd-1'], other_config: snapKeys() })],
    ['d-base-copy', vdi('base-copy', { managed: false, other_config: snapKeys() })],
    ['d-plain', vdi('plain')],
  ]),
  // the snapshot of a base whose task.destroy failed: the job's by the snapshot it made
  tasks: new Map([
    ['k-snap', task('task-snap', 'Async.VM.snapshot', 'success', '<value>r-s1</value>')],
    // killed before the snapshot had its keys: the job's by the temporary name on a job VM's snapshot
    ['k-snap-tmp', task('task-snap-tmp', 'Async.VM.snapshot', 'success', '<value>r-tmp</value>')],
    ['k-snap-tmp-other', task('task-snap-tmp-other', 'Async.VM.snapshot', 'success', '<value>r-tmp-other</value>')],
    // a snapshot still being taken names nothing yet
    ['k-snap-pending', task('task-snap-pending', 'Async.VM.snapshot', 'pending')],
  ]),
}

const target: LeftoverRecords = {
  vms: new Map([
    [
      't-r1',
      vm('r1', {
        other_config: keys({ [KEYS.datetime]: '20261201T01:00:00Z', [KEYS.copyOf]: 's2' }),
        blocked_operations: { start: START_BLOCKED_MESSAGE },
      }),
    ],
    // killed between VM.create and blocking start: start not blocked at all
    ['t-imp', vm('importing', { other_config: keys({ [KEYS.datetime]: PLACEHOLDER_DATETIME }) })],
    [
      't-imp-blocked',
      vm('importing-blocked', {
        other_config: keys({ [KEYS.datetime]: PLACEHOLDER_DATETIME }),
        blocked_operations: { start: IMPORTING_BLOCKED_MESSAGE },
      }),
    ],
    // someone started a half-made replica: left running, reported
    [
      't-imp-running',
      vm('importing-running', {
        power_state: 'Running',
        other_config: keys({ [KEYS.datetime]: PLACEHOLDER_DATETIME }),
      }),
    ],
    // XO's in-place replica while XO runs: placeholder, but it has snapshots
    [
      't-inplace',
      vm('inplace', { snapshots: ['t-era-c'], other_config: keys({ [KEYS.datetime]: PLACEHOLDER_DATETIME }) }),
    ],
    // XO era C keeps its copies as target snapshots, never marked exported
    [
      't-era-c',
      vm('era-c', {
        is_a_snapshot: true,
        snapshot_of: 't-inplace',
        other_config: keys({ [KEYS.datetime]: '20261130T00:00:00Z' }),
      }),
    ],
    // another job's interrupted replica
    [
      't-other-job',
      vm('other-job', { other_config: keys({ [KEYS.job]: 'job-2', [KEYS.datetime]: PLACEHOLDER_DATETIME }) }),
    ],
    // a seeded template is adopted by a pass, never removed
    [
      't-template',
      vm('template', { is_a_template: true, other_config: keys({ [KEYS.datetime]: PLACEHOLDER_DATETIME }) }),
    ],
  ]),
  vdis: new Map([
    // a clone made before its VBD: still the previous replica's keys
    ['d-clone', vdi('clone', { other_config: keys({ [KEYS.datetime]: '20261201T01:00:00Z', [KEYS.copyOf]: 'old' }) })],
    ['d-other-job', vdi('other-job-disk', { other_config: keys({ [KEYS.job]: 'job-2' }) })],
  ]),
  tasks: new Map([
    ['k-import', task('task-import', 'xen-cr: import VDI d-clone as vhd', 'failure')],
    // still pending: a killed run's (whoever sweeps holds the VM's lease), which nothing completes
    ['k-pending', task('task-pending', 'xen-cr: import VDI d-clone as vhd', 'pending')],
    ['k-other-job', task('task-other-job', 'xen-cr: export VDI d-other-job as vhd', 'success')],
    // an Async call's task is the job's when what it made is: a clone carrying the job's keys
    ['k-clone', task('task-clone', 'Async.VDI.clone', 'success', '<value>d-clone</value>')],
    // ... and not when what it made is another job's, or nothing a pass makes, or unknown
    ['k-clone-other', task('task-clone-other', 'Async.VDI.clone', 'success', '<value>d-other-job</value>')],
    ['k-clone-failed', task('task-clone-failed', 'Async.VDI.clone', 'failure')],
    ['k-start', task('task-start', 'Async.VM.start', 'success', '<value></value>')],
    ['k-async', task('task-async', 'Async.VM.snapshot', 'success', '<value>OpaqueRef:unknown</value>')],
  ]),
}

describe('findLeftovers', () => {
  const found = findLeftovers({ jobId: JOB, source, target, jobVms: new Set([VM_UUID]) })
  const uuids = (items: readonly { uuid: string }[]): string[] => items.map(i => i.uuid).sort()

  it('finds every kind of leftover by the job keys alone, whether start is blocked or not', () => {
    expect(uuids(found.remove)).toEqual([
      'clone',
      'importing',
      'importing-blocked',
      's3',
      'snap-disk',
      'task-clone',
      'task-import',
      'task-pending',
      'task-snap',
      'task-snap-tmp',
      'tmp',
    ])
    expect(found.remove.find(l => l.uuid === 'clone')).toMatchObject({ pool: 'target', kind: 'disk', vmUuid: VM_UUID })
    expect(found.remove.find(l => l.uuid === 'tmp')).toMatchObject({
      pool: 'source',
      kind: 'snapshot',
      vmUuid: VM_UUID,
    })
  })

  it('keeps a leftover someone started, and says why', () => {
    expect(found.keep).toMatchObject([
      { uuid: 'importing-running', reason: expect.stringMatching(/running/) as unknown },
    ])
  })

  it('never takes a base, a replica, a target snapshot, an in-place replica, a template, a base copy or another job’s object', () => {
    const all = [...found.remove, ...found.keep].map(l => l.uuid)
    for (const uuid of [
      's1',
      's2',
      'r1',
      'era-c',
      'inplace',
      'template',
      'base-copy',
      'other-job',
      'other-job-disk',
      'tmp-other',
      'attached',
      'plain',
      'task-snap-tmp-other',
      'task-snap-pending',
      'task-other-job',
      'task-clone-other',
      'task-clone-failed',
      'task-start',
      'task-async',
    ])
      expect(all).not.toContain(uuid)
  })

  it('narrows to the source VMs asked for', () => {
    const none = findLeftovers({ jobId: JOB, source, target, jobVms: new Set([VM_UUID]), only: new Set(['vm-other']) })
    expect(none.remove).toEqual([])
  })

  it('within one pool, scans it once', () => {
    const pool: LeftoverRecords = {
      vms: new Map([...source.vms, ...target.vms]),
      vdis: new Map([...source.vdis, ...target.vdis]),
      tasks: new Map([...(source.tasks ?? []), ...(target.tasks ?? [])]),
    }
    const same = findLeftovers({ jobId: JOB, source: pool, target: pool, jobVms: new Set([VM_UUID]) })
    expect(uuids(same.remove)).toEqual(uuids(found.remove))
    expect(new Set(same.remove.map(l => l.pool))).toEqual(new Set(['target']))
  })
})
