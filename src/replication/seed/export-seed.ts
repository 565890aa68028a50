/**
 * Guided seed, first half: snapshot a VM exactly as a pass does (temporary name, job keys on
 * the snapshot and its disks, XO's snapshot name), then stream each snapshot disk as a VHD into
 * a file — or the whole snapshot as one XVA — hashed on the fly, and write the manifest. On
 * failure or abort the snapshot and the partial files are removed; the folder then holds no
 * manifest.
 */
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { access, mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { isXapiError } from '../../errors.js'
import { CleanupStack } from '../../delta/cleanup.js'
import type { DeltaDisk, DeltaVmMetadata } from '../../delta/vm-metadata.js'
import type { XapiClient } from '../../xapi/client.js'
import { exportVdi } from '../../xapi/transfer.js'
import type { Ref, VmRecord } from '../../xapi/types.js'
import { exportVmXva } from '../../xapi/xva-transfer.js'
import type { VmSelection } from '../../jobs/types.js'
import { REPLICA_TAG, type PassIdentity } from '../metadata.js'
import { throttleProgress, type ByteProgress } from '../progress-throttle.js'
import { takeJobSnapshot } from '../take-job-snapshot.js'
import { MANIFEST_FILE, MANIFEST_KIND, writeManifest, type SeedManifest, type SeedManifestDisk } from './manifest.js'
import { SeedRefusal } from './seed-refusal.js'

export type SeedExportEvent =
  | {
      readonly kind: 'seed-snapshot'
      readonly vm: { readonly uuid: string; readonly name: string }
      readonly snapshot: { readonly uuid: string; readonly name: string }
    }
  | {
      readonly kind: 'seed-file-progress'
      readonly file: string
      readonly userdevice: string
      readonly bytes: number
      /**
       * how many bytes the file has in all, when known up front: a VHD export's length from its
       * header and block table, an import's exact Content-Length (an XVA export has none)
       */
      readonly total?: number
      readonly virtualSize: number
      readonly direction: 'export' | 'import'
    }
  | {
      readonly kind: 'seed-file-done'
      readonly file: string
      readonly userdevice: string
      readonly bytes: number
      readonly sha256?: string
      readonly direction: 'export' | 'import'
    }

export interface ExportSeedOptions {
  readonly source: XapiClient
  /** `vms`, when given, is the job's selection: a VM it does not replicate is refused */
  readonly job: { readonly id: string; readonly name: string; readonly vms?: VmSelection }
  readonly scheduleId: string
  readonly vmUuid: string
  /** the seed folder; created if missing, must not hold a manifest yet */
  readonly dir: string
  /** one VHD file per disk (default), or one XVA of the whole snapshot (`GET /export`) */
  readonly format?: 'vhd' | 'xva'
  readonly signal?: AbortSignal
  readonly onEvent?: (event: SeedExportEvent | SeedWarningEvent) => void
  readonly now?: () => Date
}

/** A recoverable oddity, e.g. something that could not be removed after a failure. */
export interface SeedWarningEvent {
  readonly kind: 'seed-warning'
  readonly code: string
  readonly message: string
}

/** Undoes what a failed seed step created; what cannot be undone is reported, never hidden. */
export async function undo(cleanup: CleanupStack, emit: (event: SeedWarningEvent) => void): Promise<void> {
  for (const failure of await cleanup.unwind()) {
    const why = failure.error instanceof Error ? failure.error.message : String(failure.error)
    emit({
      kind: 'seed-warning',
      code: 'CLEANUP_FAILED',
      message: `could not remove ${failure.label} after the failure: ${why}; remove it by hand`,
    })
  }
}

/** A pass-through that hashes and counts what flows through it. */
function hasher(): Transform & { digest(): string; count(): number } {
  const hash = createHash('sha256')
  let bytes = 0
  const t = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk)
      bytes += chunk.length
      callback(null, chunk)
    },
  })
  return Object.assign(t, { digest: () => hash.digest('hex'), count: () => bytes })
}

/**
 * Snapshots the VM for the job and writes its disks and manifest into `dir`.
 * @throws SeedRefusal `SEED_VM_NOT_FOUND`, `SEED_VM_NOT_IN_JOB`, `SEED_OUT_NOT_EMPTY` before anything is created
 */
export async function exportSeed(o: ExportSeedOptions): Promise<{ manifest: SeedManifest; manifestPath: string }> {
  const { source } = o
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  const emit = o.onEvent ?? (() => undefined)
  const now = o.now ?? (() => new Date())

  // the VM first: a refused VM must not leave an empty seed folder behind
  const { vmRef, vm } = await seedSourceVm(o, opts)
  await checkOutDir(o.dir)
  const id: PassIdentity = { jobId: o.job.id, scheduleId: o.scheduleId, vmUuid: vm.uuid }
  const cleanup = new CleanupStack()
  try {
    // The same steps and keys as a pass's snapshot, so the next `run` treats it as its own.
    const snapshot = await takeJobSnapshot(source, vmRef, {
      id,
      jobName: o.job.name,
      vmName: vm.name_label,
      at: now(),
      cleanup,
      ...opts,
    })
    const { name, datetime, metadata } = snapshot
    emit({
      kind: 'seed-snapshot',
      vm: { uuid: vm.uuid, name: vm.name_label },
      snapshot: { uuid: metadata.vm.uuid, name },
    })
    const run: ExportRun = { o, snapRef: snapshot.ref, metadata, cleanup, emit, opts }
    const disks = o.format === 'xva' ? await exportXvaFile(run) : await exportVhdFiles(run)
    const manifest: SeedManifest = {
      kind: MANIFEST_KIND,
      version: 1,
      createdAt: now().toISOString(),
      job: { id: o.job.id, name: o.job.name },
      scheduleId: o.scheduleId,
      vm: { uuid: vm.uuid, name: vm.name_label },
      snapshot: { uuid: metadata.vm.uuid, name, datetime },
      metadata,
      disks,
    }
    const manifestPath = await writeManifest(o.dir, manifest)
    cleanup.commit()
    return { manifest, manifestPath }
  } catch (error) {
    await undo(cleanup, emit)
    throw error
  }
}

/** Creates the seed folder; refuses one that already holds a seed. */
async function checkOutDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  const taken = await access(join(dir, MANIFEST_FILE)).then(
    () => true,
    () => false,
  )
  if (taken)
    throw new SeedRefusal(
      'SEED_OUT_NOT_EMPTY',
      `${dir} already holds a seed (${MANIFEST_FILE}); choose an empty folder`,
    )
}

/** The VM to seed: on the source pool, and a plain VM. */
async function seedSourceVm(
  o: ExportSeedOptions,
  opts: { signal?: AbortSignal },
): Promise<{ vmRef: Ref<'VM'>; vm: VmRecord }> {
  let vmRef: Ref<'VM'>
  try {
    vmRef = await o.source.getByUuid('VM', o.vmUuid, opts)
  } catch (error) {
    if (!isXapiError(error, 'UUID_INVALID')) throw error
    // a disk's uuid is an easy mistake (xe vdi-list sits next to xe vm-list): say what it is
    const disk = await o.source.getByUuid('VDI', o.vmUuid, opts).then(
      async ref => o.source.getRecord('VDI', ref, opts),
      (vdiError: unknown) => {
        if (isXapiError(vdiError, 'UUID_INVALID')) return undefined
        throw vdiError
      },
    )
    throw new SeedRefusal(
      'SEED_VM_NOT_FOUND',
      disk === undefined
        ? `VM ${o.vmUuid} is not on the source pool; check the uuid (xe vm-list)`
        : `${o.vmUuid} ("${disk.name_label}") is a disk (VDI), not a VM; give the uuid of the VM it belongs to (xen-cr vms <pool>)`,
    )
  }
  const vm = await o.source.getRecord('VM', vmRef, opts)
  if (vm.is_a_snapshot || vm.is_a_template || vm.is_control_domain) {
    const kind = vm.is_control_domain ? 'control domain' : vm.is_a_snapshot ? 'snapshot' : 'template'
    throw new SeedRefusal(
      'SEED_VM_NOT_FOUND',
      `${o.vmUuid} ("${vm.name_label}") is a ${kind}, not a VM; give the uuid of the VM to replicate`,
    )
  }
  if (o.job.vms !== undefined && !jobSelectsVm(o.job.vms, vm)) {
    throw new SeedRefusal(
      'SEED_VM_NOT_IN_JOB',
      `VM ${vm.name_label} (${vm.uuid}) is not one that job ${o.job.name} replicates; seed one of its VMs, or add it to the job (xen-cr job edit)`,
    )
  }
  return { vmRef, vm }
}

/**
 * `vm` is one the job replicates: by uuid, or by tag or "all" unless it is a replica (replicas
 * carry their source's tags). A seed of any other VM would make a replica no pass ever continues.
 */
export function jobSelectsVm(
  vms: VmSelection,
  vm: { readonly uuid: string; readonly tags: readonly string[] },
): boolean {
  if (vms.uuids.some(u => u.toLowerCase() === vm.uuid.toLowerCase())) return true
  if (vm.tags.includes(REPLICA_TAG)) return false
  return vms.all || vm.tags.some(t => vms.tags.includes(t))
}

/** What writing the files of one seed shares. */
interface ExportRun {
  readonly o: ExportSeedOptions
  readonly snapRef: Ref<'VM'>
  readonly metadata: DeltaVmMetadata
  readonly cleanup: CleanupStack
  readonly emit: NonNullable<ExportSeedOptions['onEvent']>
  readonly opts: { signal?: AbortSignal }
}

/** Streams `stream` into `file` of the seed folder, hashed; the file is removed if the seed fails. */
async function writeSeedFile(
  run: ExportRun,
  file: string,
  exported: { readonly stream: Readable; readonly done: Promise<void> },
): Promise<{ bytes: number; sha256: string }> {
  const path = join(run.o.dir, file)
  run.cleanup.defer(`file ${path}`, () => rm(path, { force: true }))
  const h = hasher()
  await Promise.all([pipeline(exported.stream, h, createWriteStream(path, { mode: 0o600 }), run.opts), exported.done])
  return { bytes: h.count(), sha256: h.digest() }
}

/** The whole snapshot as one XVA (`GET /export`), named by every disk of the manifest. */
async function exportXvaFile(run: ExportRun): Promise<SeedManifestDisk[]> {
  const { metadata, emit } = run
  const file = 'seed.xva'
  const virtualSize = metadata.disks.reduce((n, d) => n + d.vdi.virtual_size, 0)
  const onProgress = fileProgress(emit, { file, userdevice: 'all', virtualSize })
  const { bytes, sha256 } = await writeSeedFile(
    run,
    file,
    await exportVmXva(run.o.source, run.snapRef, { ...run.opts, onProgress }),
  )
  emit({ kind: 'seed-file-done', file, userdevice: 'all', bytes, sha256, direction: 'export' })
  return metadata.disks.map(disk => ({ ...manifestDisk(disk), file, format: 'xva', bytes, sha256 }))
}

/** One VHD file per snapshot disk, one after the other. */
async function exportVhdFiles(run: ExportRun): Promise<SeedManifestDisk[]> {
  const { emit } = run
  const disks: SeedManifestDisk[] = []
  for (const disk of run.metadata.disks) {
    const file = `disk-${disk.vbd.userdevice}-${disk.vdi.uuid}.vhd`
    const { userdevice } = disk.vbd
    const onProgress = fileProgress(emit, { file, userdevice, virtualSize: disk.vdi.virtual_size })
    const exported = await exportVdi(run.o.source, disk.vdiRef, { format: 'vhd', ...run.opts, onProgress })
    const { bytes, sha256 } = await writeSeedFile(run, file, exported)
    emit({ kind: 'seed-file-done', file, userdevice, bytes, sha256, direction: 'export' })
    disks.push({ ...manifestDisk(disk), file, format: 'vhd', bytes, sha256 })
  }
  return disks
}

/** The export meter's reports (one per MiB, and the last) as throttled `seed-file-progress` events. */
function fileProgress(
  emit: NonNullable<ExportSeedOptions['onEvent']>,
  what: { readonly file: string; readonly userdevice: string; readonly virtualSize: number },
): (progress: ByteProgress) => void {
  return throttleProgress(p =>
    emit({
      kind: 'seed-file-progress',
      ...what,
      bytes: p.bytes,
      ...(p.total === undefined ? {} : { total: p.total }),
      direction: 'export',
    }),
  )
}

const manifestDisk = (disk: DeltaDisk): Pick<SeedManifestDisk, 'userdevice' | 'vdiUuid' | 'name' | 'virtualSize'> => ({
  userdevice: disk.vbd.userdevice,
  vdiUuid: disk.vdi.uuid,
  name: disk.vdi.name_label,
  virtualSize: disk.vdi.virtual_size,
})
