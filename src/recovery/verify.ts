/**
 * Verify: is a replica still the copy it claims to be? For each chosen VM, its newest complete
 * replica (or `--replica`) is compared disk by disk with the source snapshot its keys name
 * (`xo:copy_of` on the VM and on each disk). Nothing is written on either pool.
 */
import { AbortedError, isXapiError, isXenCrError } from '../errors.js'
import type { Job } from '../jobs/types.js'
import { KEYS } from '../replication/metadata.js'
import type { XapiClient } from '../xapi/client.js'
import { listVmDisks, type VmDisk } from '../xapi/vbd.js'
import { asRef, type Ref } from '../xapi/types.js'
import type { DiskComparison, ErrorInfo, VerifyEventSink, VerifyVmResult } from './check-events.js'
import { chooseReplicas, type ReplicaChoice } from './choose-replica.js'
import { compareDisk, type DiskPair } from './compare-disk.js'
import { replicaInfo } from './failover.js'
import { groupJobReplicas } from './job-replicas.js'

export interface VerifyOptions {
  readonly job: Job
  readonly source: XapiClient
  readonly target: XapiClient
  /** source VM uuids or names; default every VM of the job */
  readonly vms?: readonly string[]
  /** exactly this replica (uuid) */
  readonly replica?: string
  /** compare this many random 2 MiB blocks per disk; default every block */
  readonly sample?: number
  /** a number in [0, 1); injectable so tests can pin the sample */
  readonly random?: () => number
  readonly signal?: AbortSignal
  readonly onEvent?: VerifyEventSink
  readonly now?: () => Date
}

export interface VerifyResult {
  readonly job: { readonly id: string; readonly name: string }
  /** refused VMs first, then the others in the job's VM order */
  readonly results: readonly VerifyVmResult[]
}

/** A base snapshot (or one of its disks) that cannot be found: the VM is refused, nothing read. */
class BaseGone extends Error {}

function errorInfo(error: unknown): ErrorInfo {
  if (isXenCrError(error)) return { code: error.code, message: error.message }
  return { code: 'UNEXPECTED', message: error instanceof Error ? error.message : String(error) }
}

async function byUuid<C extends 'VM' | 'VDI'>(
  client: XapiClient,
  cls: C,
  uuid: string,
  signal: AbortSignal | undefined,
): Promise<Ref<C> | undefined> {
  try {
    return await client.getByUuid(cls, uuid, signal === undefined ? {} : { signal })
  } catch (error) {
    if (isXapiError(error, 'UUID_INVALID')) return undefined
    throw error
  }
}

/**
 * Pairs each replica disk with the snapshot disk named by its `xo:copy_of`; a disk without the
 * key (a seed by xo-cr-seed 1.0.2 keys only the VM) pairs with the snapshot disk at its userdevice.
 */
async function pairDisks(
  o: VerifyOptions,
  replicaDisks: readonly VmDisk[],
  snapshotDisks: readonly VmDisk[],
  snapshotName: string,
): Promise<DiskPair[]> {
  const pairs: DiskPair[] = []
  for (const disk of replicaDisks) {
    const copyOf = disk.vdi.other_config[KEYS.copyOf]
    let source: { ref: Ref<'VDI'>; uuid: string; name: string; virtualSize: number } | undefined
    if (copyOf === undefined) {
      const twin = snapshotDisks.find(d => d.vbd.userdevice === disk.vbd.userdevice)
      if (twin === undefined)
        throw new BaseGone(
          `replica disk ${disk.vdi.name_label} (${disk.vdi.uuid}, device ${disk.vbd.userdevice}) has no ${KEYS.copyOf} and snapshot "${snapshotName}" has no disk at that device`,
        )
      source = { ref: twin.vdiRef, uuid: twin.vdi.uuid, name: twin.vdi.name_label, virtualSize: twin.vdi.virtual_size }
    } else {
      const ref = await byUuid(o.source, 'VDI', copyOf, o.signal)
      if (ref === undefined)
        throw new BaseGone(
          `disk ${copyOf} of the base snapshot (copied into replica disk ${disk.vdi.name_label}) is no longer on pool ${o.job.source}`,
        )
      const vdi = await o.source.getRecord('VDI', ref, o.signal === undefined ? {} : { signal: o.signal })
      source = { ref, uuid: vdi.uuid, name: vdi.name_label, virtualSize: vdi.virtual_size }
    }
    pairs.push({
      userdevice: disk.vbd.userdevice,
      source: { client: o.source, ...source },
      target: {
        client: o.target,
        ref: disk.vdiRef,
        uuid: disk.vdi.uuid,
        name: disk.vdi.name_label,
        virtualSize: disk.vdi.virtual_size,
      },
    })
  }
  return pairs
}

function describeDifference(disks: readonly DiskComparison[]): string {
  return disks
    .filter(d => !d.equal)
    .map(d => {
      const what = `disk ${d.userdevice} (${d.replicaDisk.name})`
      if (d.sizeDiffers === true) return `${what} has another virtual size than its snapshot disk`
      const at = d.firstDifference
      const more =
        d.differingBlocks !== undefined && d.differingBlocks > 1 ? ` (${d.differingBlocks} sampled blocks differ)` : ''
      return at === undefined
        ? `${what} differs`
        : `${what} differs from ${d.snapshotDisk.name} first at block ${at.block} (byte ${at.offset})${more}`
    })
    .join('; ')
}

async function verifyVm(
  o: VerifyOptions,
  choice: Extract<ReplicaChoice, { status: 'ready' }>,
): Promise<VerifyVmResult> {
  const emit: VerifyEventSink = o.onEvent ?? (() => undefined)
  const started = Date.now()
  const replica = replicaInfo(choice.replica)
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  const identity = { uuid: choice.vm.uuid ?? choice.vm.name, name: choice.vm.name }
  const refuse = (message: string): VerifyVmResult => ({
    status: 'refused',
    vm: choice.vm,
    error: { code: 'BASE_SNAPSHOT_GONE', message },
  })
  try {
    const record = await o.target.getRecord('VM', asRef<'VM'>(choice.replica.ref), opts)
    const copyOf = record.other_config[KEYS.copyOf]
    if (copyOf === undefined)
      return refuse(`replica ${replica.name} (${replica.uuid}) names no source snapshot (${KEYS.copyOf} is missing)`)
    const snapshotRef = await byUuid(o.source, 'VM', copyOf, o.signal)
    if (snapshotRef === undefined)
      return refuse(
        `the base snapshot ${copyOf} of replica ${replica.name} is no longer on pool ${o.job.source}; nothing to compare with (a later pass's replica may still have its base)`,
      )
    const snapshot = await o.source.getRecord('VM', snapshotRef, opts)
    const snapshotId = { uuid: snapshot.uuid, name: snapshot.name_label }
    let pairs: DiskPair[]
    try {
      pairs = await pairDisks(
        o,
        await listVmDisks(o.target, record.VBDs, opts),
        await listVmDisks(o.source, snapshot.VBDs, opts),
        snapshot.name_label,
      )
    } catch (error) {
      if (error instanceof BaseGone) return refuse(error.message)
      throw error
    }
    emit({ kind: 'verify-vm-start', vm: choice.vm, replica, snapshot: snapshotId })
    if (choice.replica.started)
      emit({
        kind: 'warning',
        vm: identity,
        code: 'REPLICA_WAS_STARTED',
        message: `replica ${replica.name} was started or its start unblocked: its disks may have changed since ${replica.datetime ?? 'it was made'}`,
      })
    const disks: DiskComparison[] = []
    for (const pair of pairs) {
      let lastPercent = -1
      const disk = await compareDisk(pair, {
        ...(o.sample === undefined ? {} : { sample: o.sample }),
        ...(o.random === undefined ? {} : { random: o.random }),
        ...opts,
        onProgress: (bytes, total) => {
          const percent = total === 0 ? 100 : Math.floor((bytes * 100) / total)
          if (percent === lastPercent) return
          lastPercent = percent
          emit({ kind: 'verify-progress', vm: choice.vm, userdevice: pair.userdevice, bytes, total })
        },
        onFallback: (side, reason) =>
          emit({
            kind: 'warning',
            vm: identity,
            code: 'NBD_UNAVAILABLE',
            message: `disk ${pair.userdevice} on the ${side} pool cannot be read over NBD (${reason}); reading its sampled blocks from a streamed export instead, which reads the disk up to the last sampled block`,
          }),
      })
      emit({ kind: 'verify-disk-done', vm: choice.vm, disk })
      disks.push(disk)
    }
    const equal = disks.every(d => d.equal)
    return {
      status: equal ? 'equal' : 'different',
      vm: choice.vm,
      replica,
      snapshot: snapshotId,
      disks,
      ...(equal ? {} : { error: { code: 'REPLICA_DIFFERS', message: describeDifference(disks) } }),
      durationMs: Date.now() - started,
    }
  } catch (error) {
    const info = o.signal?.aborted === true && !isXenCrError(error) ? errorInfo(new AbortedError()) : errorInfo(error)
    return { status: 'failed', vm: choice.vm, replica, error: info, durationMs: Date.now() - started }
  }
}

/** Chooses, then compares each ready VM in turn. Never throws for one VM's failure. */
export async function verifyReplicas(o: VerifyOptions): Promise<VerifyResult> {
  const { job, target } = o
  const emit: VerifyEventSink = o.onEvent ?? (() => undefined)
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  const [vms, srs] = await Promise.all([target.getAllRecords('VM', opts), target.getAllRecords('SR', opts)])
  const groups = groupJobReplicas({ job, vms, srs, now: o.now?.() ?? new Date() })
  const choices = chooseReplicas(groups, {
    jobName: job.name,
    ...(o.vms === undefined ? {} : { vms: o.vms }),
    ...(o.replica === undefined ? {} : { replica: o.replica }),
  })
  const jobId = { id: job.id, name: job.name }
  const results: VerifyVmResult[] = []
  for (const choice of choices)
    if (choice.status === 'refused')
      results.push({ status: 'refused', vm: choice.vm, error: { code: choice.code, message: choice.message } })
  const ready = choices.filter(c => c.status === 'ready')
  emit({ kind: 'verify-start', job: jobId, vms: ready.length, mode: o.sample === undefined ? 'full' : 'sample' })
  for (const result of results) emit({ kind: 'verify-vm-done', result })
  for (const choice of ready) {
    if (o.signal?.aborted === true) throw new AbortedError('verification aborted')
    const result = await verifyVm(o, choice)
    emit({ kind: 'verify-vm-done', result })
    results.push(result)
  }
  return { job: jobId, results }
}
