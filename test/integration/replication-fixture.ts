/**
 * Shared set-up for the replication integration tests: a lab with a source pool (one VM, two
 * small disks with guest data, one network) and a target pool (two SRs), clients to both, a
 * job, and helpers to hash disks and find replicas. Not a test file itself.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import type { Job } from '../../src/jobs/types.js'
import type { Lab } from '../../src/lab/start.js'
import type { LabSpec } from '../../src/lab/spec.js'
import { KEYS } from '../../src/replication/metadata.js'
import type { XapiClient } from '../../src/xapi/client.js'
import { exportVdi } from '../../src/xapi/transfer.js'
import { isNullRef, type Ref, type VmRecord } from '../../src/xapi/types.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'

export const MiB = 1024 * 1024
export const BLOCK = 2 * MiB

export const SPEC: LabSpec = {
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
            { name: 'web root', size: '16 MiB', filled: '8 MiB', seed: 1 },
            { name: 'web data', size: '8 MiB', filled: '2 MiB', seed: 2 },
          ],
          networks: ['Pool-wide network associated with eth0'],
        },
      ],
    },
    {
      name: 'tgt',
      srs: [{ name: 'Replica A' }, { name: 'Replica B' }],
      networks: [{ name: 'Pool-wide network associated with eth0' }],
    },
  ],
}

export interface Fixture {
  readonly lab: Lab
  readonly source: XapiClient
  readonly target: XapiClient
  readonly vmRef: Ref<'VM'>
  readonly vmUuid: string
  /** uuids of the target SRs, by name */
  readonly srs: Readonly<Record<string, string>>
  close(): Promise<void>
}

export function connect(lab: Lab, pool: string): Promise<XapiClient> {
  return connectLabPool(labPool(lab, pool))
}

export async function startFixture(spec: LabSpec = SPEC, options: { samePool?: boolean } = {}): Promise<Fixture> {
  const lab = await startTempLab(spec)
  const source = await connect(lab, 'src')
  const target = options.samePool === true ? source : await connect(lab, 'tgt')
  const vms = await source.getAllRecords('VM')
  const [vmRef, vm] = [...vms].find(([, v]) => v.name_label === 'web')!
  const srs: Record<string, string> = {}
  for (const sr of (await target.getAllRecords('SR')).values()) srs[sr.name_label] = sr.uuid
  return {
    lab,
    source,
    target,
    vmRef,
    vmUuid: vm.uuid,
    srs,
    async close() {
      await source.close()
      if (target !== source) await target.close()
      await lab.stop()
    },
  }
}

export function makeJob(f: Fixture, over: Partial<Job> = {}, retention = 2): Job {
  return {
    id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0001',
    name: 'nightly',
    enabled: true,
    source: 'src',
    vms: { uuids: [f.vmUuid], tags: [], all: false },
    target: 'tgt',
    srs: [f.srs['Replica A']!],
    schedules: [
      {
        id: '0b7e2f7a-1c55-4f0e-9a57-3c1d9e0f0002',
        timing: { kind: 'interval', interval: '1h', intervalMs: 3_600_000 },
        retention,
      },
    ],
    concurrency: 2,
    fullInterval: 0,
    networkMap: {},
    createdAt: '2026-01-01T00:00:00.000Z',
    ...over,
  }
}

/** sha256 of a disk's raw export, streamed. */
export async function rawSha256(client: XapiClient, vdi: Ref<'VDI'>): Promise<string> {
  const hash = createHash('sha256')
  const { stream, done } = await exportVdi(client, vdi, { format: 'raw' })
  for await (const chunk of stream as AsyncIterable<Buffer>) hash.update(chunk)
  await done
  return hash.digest('hex')
}

/** A VM's disks in userdevice order. */
export async function disksOf(client: XapiClient, vm: Ref<'VM'>): Promise<Ref<'VDI'>[]> {
  const record = await client.getRecord('VM', vm)
  const out: { ref: Ref<'VDI'>; userdevice: number }[] = []
  for (const vbdRef of record.VBDs) {
    const vbd = await client.getRecord('VBD', vbdRef)
    if (vbd.type === 'Disk' && !isNullRef(vbd.VDI)) out.push({ ref: vbd.VDI, userdevice: Number(vbd.userdevice) })
  }
  return out.sort((a, b) => a.userdevice - b.userdevice).map(d => d.ref)
}

/** Replica VMs of the job for the VM on the target (not snapshots), oldest first. */
export async function replicas(
  client: XapiClient,
  jobId: string,
  vmUuid: string,
  srUuid?: string,
): Promise<[Ref<'VM'>, VmRecord][]> {
  const vms = await client.getAllRecords('VM')
  return [...vms]
    .filter(([, v]) => !v.is_a_snapshot && v.other_config[KEYS.job] === jobId && v.other_config[KEYS.vm] === vmUuid)
    .filter(([, v]) => srUuid === undefined || v.other_config[KEYS.sr] === srUuid)
    .sort(([, a], [, b]) => (a.other_config[KEYS.datetime] ?? '').localeCompare(b.other_config[KEYS.datetime] ?? ''))
}

/** This job's snapshots of the VM on the source, oldest first. */
export async function jobSnapshots(
  client: XapiClient,
  jobId: string,
  vmRef: Ref<'VM'>,
): Promise<[Ref<'VM'>, VmRecord][]> {
  const vms = await client.getAllRecords('VM')
  return [...vms]
    .filter(([, v]) => v.is_a_snapshot && v.snapshot_of === vmRef && v.other_config[KEYS.job] === jobId)
    .sort(([, a], [, b]) => (a.other_config[KEYS.datetime] ?? '').localeCompare(b.other_config[KEYS.datetime] ?? ''))
}

/** Every replica disk hashes like the source snapshot disk it is a copy of. */
export async function expectReplicaMatches(
  f: Fixture,
  replica: Ref<'VM'>,
  snapshot: Ref<'VM'>,
): Promise<{ replica: string[]; snapshot: string[] }> {
  const r = await Promise.all((await disksOf(f.target, replica)).map(d => rawSha256(f.target, d)))
  const s = await Promise.all((await disksOf(f.source, snapshot)).map(d => rawSha256(f.source, d)))
  return { replica: r, snapshot: s }
}

/** Exact length of a VHD export of a disk of `virtualSize` holding `blocks` blocks (reference §5.2 layout). */
export function vhdLength(virtualSize: number, blocks: number): number {
  const entries = Math.ceil(virtualSize / BLOCK)
  return 2048 + Math.ceil((4 * entries) / 512) * 512 + blocks * (BLOCK + 512) + 512
}

/** `xen-cr <args>` run in this process against the fixture's lab config and a job store in its dir. */
export async function fixtureCli(
  f: Fixture,
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<{ code: number; out: string; err: string }> {
  // loaded here, so that the many tests that use the fixture without the CLI do not load it
  const { run } = await import('../../src/cli/program.js')
  const stdout = new CaptureStream()
  const stderr = new CaptureStream()
  const code = await run(['--config', f.lab.configPath, '--jobs-file', join(f.lab.dir, 'jobs.json'), ...args], {
    stdout,
    stderr,
    env: { HOME: f.lab.dir, XDG_CONFIG_HOME: f.lab.dir, ...env },
    cwd: f.lab.dir,
    now: () => new Date(),
  })
  return { code, out: stdout.text, err: stderr.text }
}

/** `job create` arguments for a job copying the fixture's VM to Replica A every hour, plus `extra`. */
export function jobCreateArgs(f: Fixture, name: string, ...extra: string[]): string[] {
  return [
    'job',
    'create',
    '--name',
    name,
    '--source',
    'src',
    '--target',
    'tgt',
    '--vm',
    f.vmUuid,
    '--sr',
    f.srs['Replica A']!,
    '--interval',
    '1h',
    ...extra,
  ]
}
