import { readFileSync, writeFileSync } from 'node:fs'
import { Chalk } from 'chalk'
import * as prettier from 'prettier'
import { describe, expect, it } from 'vitest'
import { CaptureStream } from '../../../test/helpers/capture-stream.js'
import { generateEventsSchema } from '../../../test/helpers/events-schema.js'
import { SCHEMA_FILE, validateEventLine } from '../../../test/helpers/events-validator.js'
import type { Job } from '../../jobs/types.js'
import type { VmPlan } from '../../replication/plan.js'
import type { OutputEvent, OutputEventKind, OutputEventOf } from './events.js'
import { formatterFor } from './formatters.js'
import { JsonRenderer } from './renderers.js'

// The schema is generated from the event types; this file pins it: every kind has an example
// (a kind added without one does not compile), every example is valid as the JSON renderer
// writes it, and the committed docs/events.schema.json is what the types generate today.

const NOW = new Date('2026-08-21T13:00:00.000Z')
const job: Job = {
  id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0001',
  name: 'nightly',
  enabled: true,
  source: 'prod',
  vms: { uuids: ['7d5e0c1a-0000-4000-8000-000000000001'], tags: ['cr'], all: false },
  target: 'dr',
  srs: ['5a1f0000-0000-4000-8000-0000000000a1'],
  schedules: [
    {
      id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0002',
      timing: { kind: 'interval', interval: '1h', intervalMs: 3_600_000 },
      retention: 3,
    },
    { id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0003', timing: { kind: 'cron', cron: '0 2 * * *' }, retention: 7 },
  ],
  concurrency: 2,
  fullInterval: 0,
  networkMap: { 'net-src': 'net-dst' },
  maxRate: 52_428_800,
  createdAt: '2026-01-01T00:00:00.000Z',
}
const jobRef = { id: job.id, name: job.name }
const vm = { uuid: '7d5e0c1a-0000-4000-8000-000000000001', name: 'web' }
const object = (name: string) => ({ ref: `OpaqueRef:${name}`, uuid: `${name}-uuid`, name })
const replicaInfo = {
  uuid: 'r-uuid',
  name: 'web - nightly - (20260821T130000Z)',
  srUuid: 'sr-uuid',
  srName: 'Replica A',
}
const recoveryReplica = { ...replicaInfo, datetime: '20260821T13:00:00Z', ageMs: 300_000 }
const failed = { code: 'XAPI_SR_BACKEND_FAILURE_44', message: 'VM.snapshot: SR_BACKEND_FAILURE_44 (, no space, )' }
const plan: VmPlan = {
  vm: object('web'),
  identity: { jobId: job.id, scheduleId: job.schedules[0]!.id, vmUuid: vm.uuid },
  base: { ...object('snap'), datetime: '20260821T12:00:00Z', deltaChainLength: 1, era: 'B' },
  mode: 'delta',
  nextDeltaChainLength: 2,
  targets: [
    {
      sr: object('Replica A'),
      baseReplica: { ...object('replica'), datetime: '20260821T12:00:00Z' },
      disks: [
        {
          vdi: object('root'),
          userdevice: '0',
          virtualSize: 16 * 2 ** 30,
          mode: 'delta',
          baseSnapshotVdi: object('root-snap'),
          targetBaseVdi: object('root-replica'),
        },
        { vdi: object('data'), userdevice: '1', virtualSize: 2 ** 30, mode: 'full', reason: 'new-disk' },
      ],
      deleteReplicas: [{ ...object('old'), datetime: undefined }],
    },
  ],
  deleteSnapshots: [object('older')],
  warnings: [{ code: 'DISK_WITHOUT_BASE', message: 'disk data has no base: full' }],
}
const success = {
  status: 'success',
  vm,
  mode: 'delta',
  bytes: 4_196_864,
  disks: 2,
  durationMs: 1200,
  replicas: [replicaInfo],
} as const
const jobReplica = {
  ...object('replica'),
  vm,
  srUuid: 'sr-uuid',
  srName: 'Replica A',
  datetime: '20260821T13:00:00Z',
  ageMs: 300_000,
  complete: true,
  protected: true,
  started: false,
  powerState: 'Halted',
  chain: 'delta',
  order: 0,
  startDelay: 0,
} as const
const leftover = {
  pool: 'target',
  kind: 'disk',
  ref: 'OpaqueRef:7b1c0c55-0000-4000-8000-00000000d151',
  uuid: '7b1c0c55-0000-4000-8000-00000000d152',
  name: 'web-01 disk 0',
  vmUuid: '7d5e0c1a-0000-4000-8000-000000000001',
  why: 'disk attached to nothing',
} as const
const deletion = {
  side: 'target',
  what: 'replica',
  uuid: 'r-uuid',
  name: 'web - nightly',
  vm,
  datetime: undefined,
} as const
const failedOver = { uuid: 'f-uuid', name: 'web (failover)', powerState: 'Halted' }
const comparison = {
  userdevice: '0',
  replicaDisk: { uuid: 'rd', name: 'root' },
  snapshotDisk: { uuid: 'sd', name: 'root' },
  virtualSize: 2 ** 30,
  mode: 'sample',
  equal: false,
  blocksCompared: 8,
  sampled: [0, 3, 9],
  firstDifference: { block: 3, offset: 3 * 2 ** 21 },
  differingBlocks: 1,
  source: { via: 'nbd', bytes: 3 * 2 ** 21 },
  target: { via: 'stream', bytes: 2 ** 30 },
} as const

const examples: { readonly [K in OutputEventKind]: OutputEventOf<K> } = {
  info: { kind: 'info', message: 'job "nightly": not due' },
  debug: { kind: 'debug', message: 'checking pools "prod" and "dr"' },
  warning: { kind: 'warning', code: 'SOURCE_UNREACHABLE', message: 'pool prod cannot be read', vm },
  error: { kind: 'error', code: 'POOL_UNREACHABLE', message: 'pool dr cannot be reached', exitCode: 4, stack: 'at x' },
  'pass-start': { kind: 'pass-start', job: jobRef, scheduleId: job.schedules[0]!.id, vms: 2 },
  'vm-start': { kind: 'vm-start', vm, plan },
  'disk-progress': {
    kind: 'disk-progress',
    vm,
    srUuid: 'sr-uuid',
    disk: { uuid: 'd-uuid', name: 'root', userdevice: '0' },
    mode: 'full',
    bytes: 2 ** 21,
    total: 2 ** 22,
    virtualSize: 2 ** 30,
  },
  'vm-done': { kind: 'vm-done', result: success },
  'pass-done': {
    kind: 'pass-done',
    results: [
      success,
      { status: 'failed', vm: { uuid: 'db-uuid', name: 'db' }, durationMs: 10, error: failed },
      {
        status: 'skipped',
        vm: { uuid: 'mail-uuid', name: 'mail' },
        durationMs: 0,
        reason: 'leased',
        holder: { host: 'ctl-2', pid: 4711, run: '6f1c2a1e-0a51-4d2b-9d7e-1f0f3c0e5b7a' },
        at: '2026-08-21T12:02:00.000Z',
        message: 'leased by ctl-2/4711 until 2026-08-21T12:02:00.000Z',
      },
    ],
  },
  'pass-plan': { kind: 'pass-plan', job: jobRef, scheduleId: job.schedules[0]!.id, plans: [plan] },
  'replica-list': {
    kind: 'replica-list',
    listings: [
      {
        job: { ...jobRef, enabled: true },
        rpoMs: 3_600_000,
        vms: [
          {
            vm,
            replicas: [
              {
                ...replicaInfo,
                scheduleId: 's',
                datetime: '20260821T13:00:00Z',
                ageMs: 1,
                chain: 'delta',
                complete: true,
              },
              {
                ...replicaInfo,
                scheduleId: undefined,
                datetime: undefined,
                ageMs: undefined,
                chain: 'unknown',
                complete: false,
              },
            ],
            ageMs: 1,
            status: 'ok',
          },
          { vm: { uuid: 'db-uuid', name: 'db' }, replicas: [], ageMs: undefined, status: 'never' },
        ],
      },
    ],
  },
  'job-created': { kind: 'job-created', job, crontab: '*/15 * * * * /usr/bin/node xen-cr.js run --due' },
  'job-list': { kind: 'job-list', jobs: [job] },
  'job-show': { kind: 'job-show', job, crontab: '*/15 * * * * x' },
  'job-deleted': { kind: 'job-deleted', id: job.id, name: job.name },
  'job-state': { kind: 'job-state', id: job.id, name: job.name, enabled: false },
  'job-edited': {
    kind: 'job-edited',
    job,
    changes: [{ setting: 'concurrency', from: '2', to: '4' }],
    crontab: '*/15 * * * * x',
  },
  'config-show': {
    kind: 'config-show',
    file: null,
    pools: [
      { name: 'prod', url: 'https://10.0.0.10', user: 'root', password: 'file prod.password', allowUnauthorized: true },
    ],
    defaults: { jobsFile: '/etc/xen-cr/jobs.json', retention: 1, concurrency: 2, fullInterval: 0 },
  },
  'pool-check': {
    kind: 'pool-check',
    pool: 'dr',
    url: 'https://10.1.0.10',
    ok: true,
    certificate: { fingerprint: `sha256:${'AB:'.repeat(31)}AB`, pinned: true },
  },
  'run-due-done': {
    kind: 'run-due-done',
    jobs: [
      {
        id: 'j1',
        name: 'nightly',
        status: 'failed',
        vms: [
          { ...vm, status: 'failed', code: 'DISK_TRANSFER_FAILED', message: 'disk 0: connection reset' },
          { uuid: 'db-uuid', name: 'db', status: 'success' },
        ],
      },
      {
        id: 'j2',
        name: 'hourly',
        status: 'leased',
        vms: [
          {
            ...vm,
            status: 'skipped',
            reason: 'replicated',
            message: 'replicated by ctl-2/4711 in a pass started at 2026-08-21T12:00:00.000Z, after this run started',
          },
        ],
      },
    ],
    exitCode: 1,
  },
  'seed-plan': {
    kind: 'seed-plan',
    dryRun: true,
    plan: {
      identity: plan.identity,
      datetime: '20260821T12:00:00Z',
      snapshot: object('snap'),
      sourceVm: object('web'),
      targetVm: object('copy'),
      sr: object('Replica A'),
      replicaName: 'web - nightly - (20260821T120000Z)',
      pairs: [{ userdevice: '0', virtualSize: 2 ** 30, source: object('root-snap'), target: object('root-copy') }],
      changes: [
        {
          side: 'target',
          cls: 'VM',
          object: object('copy'),
          otherConfig: { 'xo:backup:job': job.id },
          nameLabel: 'web - nightly - (20260821T120000Z)',
          blockedOperations: { start: 'blocked' },
          addTags: ['Continuous Replication'],
          clearIsATemplate: true,
          clearHa: true,
        },
      ],
      warnings: [{ code: 'SEED_JOB_NOT_IN_STORE', message: 'the job is not in the job store' }],
    },
  },
  'seed-verify-progress': {
    kind: 'seed-verify-progress',
    userdevice: '0',
    side: 'source',
    bytes: 2 ** 21,
    total: 2 ** 24,
    read: 2 ** 22,
  },
  'seed-verified': {
    kind: 'seed-verified',
    disks: [
      {
        userdevice: '0',
        source: 's',
        target: 't',
        mode: 'sample',
        blocks: [0, 7],
        equal: false,
        firstDifferentBlock: 7,
      },
      { userdevice: '1', source: 's', target: 't', mode: 'full', sourceSha256: 'ab', targetSha256: 'ab', equal: true },
    ],
  },
  'seed-snapshot': { kind: 'seed-snapshot', vm, snapshot: { uuid: 'snap-uuid', name: 'web - seed' } },
  'seed-file-progress': {
    kind: 'seed-file-progress',
    file: 'disk-0.vhd',
    userdevice: '0',
    bytes: 2 ** 21,
    total: 2 ** 22,
    virtualSize: 2 ** 30,
    direction: 'export',
  },
  'seed-file-done': {
    kind: 'seed-file-done',
    file: 'disk-0.vhd',
    userdevice: '0',
    bytes: 2 ** 22,
    sha256: 'ab',
    direction: 'import',
  },
  'seed-exported': {
    kind: 'seed-exported',
    dir: '/mnt/usb/seed',
    manifest: '/mnt/usb/seed/manifest.json',
    snapshot: { uuid: 'snap-uuid', name: 'web - seed' },
    bytes: 2 ** 22,
  },
  'seed-done': { kind: 'seed-done', written: true, job: job.id, replica: { uuid: 'r-uuid', name: 'web - nightly' } },
  'failover-start': { kind: 'failover-start', job: jobRef, vms: 1 },
  'failover-vm-start': { kind: 'failover-vm-start', vm, replica: recoveryReplica },
  'failover-vm-done': {
    kind: 'failover-vm-done',
    result: {
      status: 'success',
      vm,
      replica: recoveryReplica,
      failoverVm: { uuid: 'f-uuid', name: 'web (failover)' },
      via: 'copy',
      started: true,
      vifs: 1,
      durationMs: 900,
    },
  },
  'failover-wait': { kind: 'failover-wait', afterOrder: 0, delayMs: 30_000 },
  'failover-plan': {
    kind: 'failover-plan',
    job: jobRef,
    plan: {
      at: NOW,
      entries: [
        { status: 'ready', vm, replica: jobReplica, name: 'web (failover)' },
        { status: 'refused', vm: { uuid: undefined, name: 'db' }, code: 'NO_REPLICA', message: 'db has no replica' },
      ],
      groups: [
        { order: 0, startDelayMs: 0, entries: [{ status: 'ready', vm, replica: jobReplica, name: 'web (failover)' }] },
      ],
    },
  },
  'failover-done': {
    kind: 'failover-done',
    job: jobRef,
    results: [
      { status: 'failed', vm, replica: recoveryReplica, error: failed, durationMs: 5 },
      { status: 'refused', vm: { uuid: undefined, name: 'db' }, error: { code: 'NO_REPLICA', message: 'no replica' } },
    ],
  },
  'job-replicas': { kind: 'job-replicas', job: jobRef, vms: [{ vm, replicas: [jobReplica] }] },
  'deletion-plan': {
    kind: 'deletion-plan',
    job: jobRef,
    delete: [deletion],
    keep: [{ ...deletion, what: 'snapshot', side: 'source', reason: 'the source pool cannot be reached' }],
  },
  deleted: { kind: 'deleted', item: deletion },
  'deletion-done': { kind: 'deletion-done', job: jobRef, deleted: 1, failed: 0 },
  'cleanup-plan': {
    kind: 'cleanup-plan',
    job: jobRef,
    dryRun: false,
    remove: [leftover],
    keep: [{ ...leftover, kind: 'replica', reason: 'it is running; shut it down to let it be removed' }],
  },
  'cleanup-removed': { kind: 'cleanup-removed', item: leftover },
  'cleanup-done': { kind: 'cleanup-done', job: jobRef, removed: 1, failed: 0, kept: 1 },
  'failback-start': { kind: 'failback-start', job: jobRef, vms: 1 },
  'failback-vm-start': {
    kind: 'failback-vm-start',
    failedOver,
    mode: 'new',
    base: { uuid: 'snap-uuid', name: 'web snapshot', datetime: '20260821T12:00:00Z' },
  },
  'failback-vm-done': {
    kind: 'failback-vm-done',
    result: {
      status: 'success',
      failedOver,
      mode: 'in-place',
      vm: { uuid: 'web-uuid', name: 'web' },
      original: { uuid: 'web-uuid', name: 'web' },
      replica: { uuid: 'r-uuid', name: 'web - nightly', datetime: '20260821T13:00:00Z' },
      base: { uuid: 'snap-uuid', name: 'web snapshot', datetime: '20260821T12:00:00Z' },
      bytes: 2 ** 21,
      disks: [{ userdevice: '0', name: 'root', vdi: { uuid: 'v-uuid', name: 'root' }, bytes: 2 ** 21 }],
      started: false,
      resume: {
        snapshot: { uuid: 's-uuid', name: 'snap' },
        replicas: [{ uuid: 'r', name: 'r', srUuid: 'sr' }],
        fullOn: [],
      },
      durationMs: 1000,
    },
  },
  'failback-plan': {
    kind: 'failback-plan',
    job: jobRef,
    plan: {
      mode: 'new',
      entries: [
        {
          status: 'ready',
          failedOver: { ...failedOver, ref: 'OpaqueRef:f' },
          mode: 'new',
          replica: { ...object('replica'), datetime: '20260821T13:00:00Z', srUuid: 'sr-uuid', srRef: 'OpaqueRef:sr' },
          base: { ...object('snap'), datetime: '20260821T12:00:00Z', deltaChainLength: 1, scheduleId: 's' },
          original: { ...object('web'), powerState: 'Halted' },
          name: 'web',
          disks: [
            {
              userdevice: '0',
              failedOver: { ...object('root-f'), virtualSize: 2 ** 30 },
              delta: {
                replica: object('root-r'),
                base: { ...object('root-s'), srRef: 'OpaqueRef:sr' },
                original: object('root'),
              },
            },
          ],
        },
        { status: 'refused', failedOver, code: 'NOT_FAILED_OVER', message: 'not a failover VM' },
      ],
    },
  },
  'failback-done': {
    kind: 'failback-done',
    job: jobRef,
    results: [
      { status: 'failed', failedOver, mode: 'new', error: failed, durationMs: 3 },
      { status: 'refused', failedOver, error: { code: 'FAILBACK_NO_BASE', message: 'no base' } },
    ],
    jobVms: [{ from: 'old-uuid', to: 'new-uuid' }],
  },
  'rpo-check': {
    kind: 'rpo-check',
    ok: false,
    jobs: [
      {
        job: { ...jobRef, enabled: true },
        rpoMs: 3_600_000,
        maxAgeMs: 7_200_000,
        toleranceMs: 300_000,
        vms: [
          {
            vm,
            status: 'late',
            ageMs: 9_000_000,
            newest: { uuid: 'r-uuid', name: 'web - nightly', datetime: '20260821T10:30:00Z', srName: 'Replica A' },
          },
          { vm: { uuid: 'db-uuid', name: 'db' }, status: 'never' },
        ],
      },
    ],
    unknown: [{ job: { id: 'j2', name: 'weekly', enabled: true }, code: 'POOL_UNREACHABLE', message: 'x' }],
    skipped: [{ id: 'j3', name: 'monthly' }],
  },
  'vm-inventory': {
    kind: 'vm-inventory',
    pool: 'prod',
    vms: [{ uuid: vm.uuid, name: 'web', powerState: 'Running', tags: ['cr'], disks: 2, diskBytes: 2 ** 34 }],
  },
  'sr-inventory': {
    kind: 'sr-inventory',
    pool: 'dr',
    srs: [
      {
        uuid: 'sr-uuid',
        name: 'Replica A',
        type: 'lvm',
        contentType: 'user',
        shared: false,
        size: 2 ** 40,
        free: 2 ** 39,
        default: true,
      },
    ],
  },
  'network-inventory': {
    kind: 'network-inventory',
    pool: 'dr',
    networks: [
      { uuid: 'n1', name: 'LAN', bridge: 'xenbr0', mtu: 1500 },
      { uuid: 'n2', name: 'DMZ', bridge: 'xapi1', vlan: 42, mtu: 9000 },
    ],
  },
  'completion-script': { kind: 'completion-script', shell: 'bash', script: '_xen_cr() { :; }\n' },
  'verify-start': { kind: 'verify-start', job: jobRef, vms: 1, mode: 'sample' },
  'verify-vm-start': { kind: 'verify-vm-start', vm, replica: recoveryReplica, snapshot: { uuid: 's', name: 'snap' } },
  'verify-progress': { kind: 'verify-progress', vm, userdevice: '0', bytes: 2 ** 21, total: 2 ** 24 },
  'verify-disk-done': { kind: 'verify-disk-done', vm, disk: comparison },
  'verify-vm-done': {
    kind: 'verify-vm-done',
    result: {
      status: 'different',
      vm,
      replica: recoveryReplica,
      snapshot: { uuid: 's', name: 'snap' },
      disks: [comparison],
      error: { code: 'REPLICA_DIFFERS', message: 'disk 0 differs' },
      durationMs: 800,
    },
  },
  'verify-done': {
    kind: 'verify-done',
    job: jobRef,
    results: [
      { status: 'failed', vm, replica: recoveryReplica, error: failed, durationMs: 2 },
      { status: 'refused', vm: { uuid: undefined, name: 'db' }, error: { code: 'NO_REPLICA', message: 'no replica' } },
    ],
  },
  'health-check-start': { kind: 'health-check-start', job: jobRef, vms: 1, timeoutMs: 600_000 },
  'health-check-step': { kind: 'health-check-step', vm, step: 'tools', name: 'web (health check)' },
  'health-check-vm-done': {
    kind: 'health-check-vm-done',
    result: {
      status: 'success',
      vm,
      replica: recoveryReplica,
      clone: { uuid: 'c-uuid', name: 'web (health check)' },
      via: 'clone',
      mode: 'xenstore',
      reached: { running: 100, tools: 600, verdict: 900 },
      cleanedUp: true,
      durationMs: 1500,
    },
  },
  'health-check-done': {
    kind: 'health-check-done',
    job: jobRef,
    results: [
      {
        status: 'failed',
        vm,
        replica: recoveryReplica,
        clone: undefined,
        via: 'copy',
        mode: 'tools',
        reached: { running: 100 },
        error: { code: 'HEALTH_CHECK_NO_TOOLS', message: 'no guest tools within 10m' },
        cleanedUp: false,
        durationMs: 600_000,
      },
      { status: 'refused', vm, error: { code: 'NO_REPLICA', message: 'no replica' } },
    ],
  },
}

/** The line the JSON renderer writes for `event` (stdout or, for an error, stderr). */
function rendered(event: OutputEvent): string {
  const stdout = new CaptureStream()
  const stderr = new CaptureStream()
  new JsonRenderer(stdout, stderr, () => NOW).render(event)
  const lines = [...stdout.lines, ...stderr.lines]
  expect(lines).toHaveLength(1)
  return lines[0]!
}

describe('docs/events.schema.json', () => {
  it('is what the event types generate (XEN_CR_WRITE_SCHEMA=1 rewrites it)', async () => {
    const generated = generateEventsSchema()
    if (process.env['XEN_CR_WRITE_SCHEMA'] === '1') {
      const options = (await prettier.resolveConfig(SCHEMA_FILE)) ?? {}
      writeFileSync(SCHEMA_FILE, await prettier.format(JSON.stringify(generated), { ...options, parser: 'json' }))
    }
    expect(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8'))).toEqual(generated)
  }, 60_000)

  it('accepts an example of every event kind, as --json writes it, and each has a formatter', () => {
    const style = new Chalk({ level: 0 })
    for (const [kind, event] of Object.entries(examples) as [OutputEventKind, OutputEvent][]) {
      expect(event.kind).toBe(kind)
      const line = validateEventLine(rendered(event))
      expect(line).toMatchObject({ kind, time: NOW.toISOString(), schemaVersion: 1 })
      expect(Array.isArray(formatterFor(event).format(event, style, { medium: 'plain', quiet: false }))).toBe(true)
    }
  })

  it('refuses an unknown kind, a missing or unknown field, a wrong type and another schema version', () => {
    const line = (event: unknown): string => JSON.stringify(event)
    const envelope = { time: NOW.toISOString(), schemaVersion: 1 }
    expect(() => validateEventLine(line({ kind: 'vm-teleported', ...envelope }))).toThrow(/kind/)
    expect(() => validateEventLine(line({ kind: 'info', ...envelope }))).toThrow(/message/)
    expect(() => validateEventLine(line({ kind: 'info', message: 'm', colour: 'red', ...envelope }))).toThrow(
      /additional properties/,
    )
    expect(() =>
      validateEventLine(line({ kind: 'job-state', id: 'i', name: 'n', enabled: 'yes', ...envelope })),
    ).toThrow(/boolean/)
    expect(() => validateEventLine(line({ kind: 'info', message: 'm', ...envelope, schemaVersion: 2 }))).toThrow(
      /schemaVersion/,
    )
    expect(() => validateEventLine(line({ kind: 'info', message: 'm', schemaVersion: 1, time: 'noon' }))).toThrow(
      /time/,
    )
    const { time: _time, ...noTime } = JSON.parse(rendered(examples.info)) as Record<string, unknown>
    expect(() => validateEventLine(line(noTime))).toThrow(/time/)
  })
})
