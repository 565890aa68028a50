/**
 * Guided seed, second half: check the folder against its manifest, build the replica on the
 * target SR exactly as a pass assembles one (`createReplicaVm`), import each VHD file into its
 * disk, then attach the seed metadata through the same plan and checks as `xen-cr seed`. Until
 * the metadata is written, everything created is undone on failure or abort.
 */
import { createReadStream } from 'node:fs'
import { join } from 'node:path'
import { isXapiError } from '../../errors.js'
import { CleanupStack } from '../../delta/cleanup.js'
import { createReplicaVm } from '../../delta/import-vm.js'
import type { XapiClient } from '../../xapi/client.js'
import { importVdi } from '../../xapi/transfer.js'
import { importVmXva } from '../../xapi/xva-transfer.js'
import { setVmIsATemplate } from '../../xapi/vm.js'
import { destroyVmAndDisks } from '../destroy.js'
import { throttleProgress, type ByteProgress } from '../progress-throttle.js'
import { REPLICA_POLICY } from '../replica-policy.js'
import type { Ref } from '../../xapi/types.js'
import type { VmSelection } from '../../jobs/types.js'
import {
  KEYS,
  PLACEHOLDER_DATETIME,
  contentKeyOf,
  replicaName,
  replicaVdiKeys,
  replicaVmKeys,
  parseXapiDateTime,
  type PassIdentity,
} from '../metadata.js'
import { jobSelectsVm, undo, type SeedExportEvent, type SeedWarningEvent } from './export-seed.js'
import { checkManifestFiles, readManifest, type SeedManifest } from './manifest.js'
import { SeedRefusal } from './seed-refusal.js'
import { seed, type SeedEvent, type SeedResult } from './seed.js'

export interface ImportSeedOptions {
  readonly source: XapiClient
  readonly target: XapiClient
  /** the job as stored: its id must be the manifest's, the SR one of its SRs */
  readonly job: {
    readonly id: string
    /** the job's selection, when known: a seed of a VM it does not replicate is refused */
    readonly vms?: VmSelection
    readonly name: string
    readonly srs: readonly string[]
    readonly networkMap: Readonly<Record<string, string>>
  }
  readonly dir: string
  readonly srUuid: string
  readonly signal?: AbortSignal
  readonly onEvent?: (event: SeedExportEvent | SeedEvent | SeedWarningEvent) => void
  readonly now?: () => Date
}

export interface ImportSeedResult extends SeedResult {
  readonly manifest: SeedManifest
  readonly replica: { readonly uuid: string; readonly name: string }
}

/**
 * Imports a seed folder onto `srUuid` and attaches the metadata.
 * @throws SeedRefusal before anything is created: manifest invalid or for another job, a file
 *   that does not match, an SR outside the job, the snapshot gone or already replicated there
 */
export async function importSeed(o: ImportSeedOptions): Promise<ImportSeedResult> {
  const { source, target } = o
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  const emit = o.onEvent ?? (() => undefined)

  const manifest = await readManifest(o.dir)
  const srRef = await checkImport(o, manifest)
  await checkManifestFiles(o.dir, manifest, o.signal)

  const id: PassIdentity = { jobId: o.job.id, scheduleId: manifest.scheduleId, vmUuid: manifest.vm.uuid }
  const name = replicaName(manifest.vm.name, o.job.name, parseXapiDateTime(manifest.snapshot.datetime) ?? new Date(0))
  const cleanup = new CleanupStack()
  try {
    const replicaRef =
      manifest.disks[0]!.format === 'xva'
        ? await importXva(o, manifest, srRef, cleanup, emit)
        : await importVhds(o, manifest, id, srRef, name, cleanup, emit)
    const replicaUuid = (await target.getRecord('VM', replicaRef, opts)).uuid
    const result = await seed({
      request: {
        job: { id: o.job.id, name: o.job.name, srs: o.job.srs },
        scheduleId: manifest.scheduleId,
        snapshotUuid: manifest.snapshot.uuid,
        targetVmUuid: replicaUuid,
      },
      source,
      target,
      ...opts,
      onEvent: emit,
      ...(o.now === undefined ? {} : { now: o.now }),
    })
    cleanup.commit()
    return { ...result, manifest, replica: { uuid: replicaUuid, name } }
  } catch (error) {
    await undo(cleanup, emit)
    throw error
  }
}

type Emit = NonNullable<ImportSeedOptions['onEvent']>

/**
 * Refuses an import that does not fit: a manifest for another job, an SR outside the job or
 * not on the target pool, a snapshot gone from the source, a copy already there. Resolves to the SR.
 */
async function checkImport(o: ImportSeedOptions, manifest: SeedManifest): Promise<Ref<'SR'>> {
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  if (manifest.job.id !== o.job.id) {
    throw new SeedRefusal(
      'SEED_MANIFEST_INVALID',
      `${o.dir} is a seed for job ${manifest.job.name} (${manifest.job.id}), not ${o.job.name}; use --job ${manifest.job.id}`,
    )
  }
  if (!o.job.srs.some(u => u.toLowerCase() === o.srUuid.toLowerCase())) {
    throw new SeedRefusal(
      'SEED_SR_NOT_IN_JOB',
      `SR ${o.srUuid} is not a target of job ${o.job.name} (${o.job.srs.join(', ')}); choose one of its SRs`,
    )
  }
  let srRef: Ref<'SR'>
  try {
    srRef = await o.target.getByUuid('SR', o.srUuid, opts)
  } catch (error) {
    if (isXapiError(error, 'UUID_INVALID'))
      throw new SeedRefusal(
        'SEED_SR_NOT_IN_JOB',
        `SR ${o.srUuid} is not on the target pool; check the uuid (xe sr-list)`,
      )
    throw error
  }
  try {
    await o.source.getByUuid('VM', manifest.snapshot.uuid, opts)
  } catch (error) {
    if (isXapiError(error, 'UUID_INVALID')) {
      throw new SeedRefusal(
        'SEED_SNAPSHOT_NOT_FOUND',
        `snapshot ${manifest.snapshot.uuid} of this seed is gone from the source pool (a run of the job rotates it away); export a new seed`,
      )
    }
    throw error
  }
  if (o.job.vms !== undefined) {
    // a VM gone from the source is left to the seed's own check of the snapshot's VM
    const vm = await o.source.getByUuid('VM', manifest.vm.uuid, opts).then(
      async ref => o.source.getRecord('VM', ref, opts),
      (error: unknown) => {
        if (isXapiError(error, 'UUID_INVALID')) return undefined
        throw error
      },
    )
    if (vm !== undefined && !jobSelectsVm(o.job.vms, vm))
      throw new SeedRefusal(
        'SEED_VM_NOT_IN_JOB',
        `${o.dir} is a seed of VM ${vm.name_label} (${vm.uuid}), which job ${o.job.name} does not replicate; add the VM to the job (xen-cr job edit) or export a seed of one of its VMs`,
      )
  }
  for (const vm of (await o.target.getAllRecords('VM', opts)).values()) {
    const oc = vm.other_config
    if (oc[KEYS.copyOf] === manifest.snapshot.uuid && oc[KEYS.job] === o.job.id && oc[KEYS.sr] === o.srUuid) {
      throw new SeedRefusal(
        'SEED_ALREADY_REPLICATED',
        `VM ${vm.name_label} (${vm.uuid}) is already the copy of this seed's snapshot on SR ${o.srUuid}; nothing to import`,
      )
    }
  }
  return srRef
}

/** The replica assembled as a pass does (VM, disks, VBDs, VIFs with the job's network map), each disk's VHD imported. */
async function importVhds(
  o: ImportSeedOptions,
  manifest: SeedManifest,
  id: PassIdentity,
  srRef: Ref<'SR'>,
  name: string,
  cleanup: CleanupStack,
  emit: Emit,
): Promise<Ref<'VM'>> {
  const { target } = o
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  const disks = manifest.metadata.disks.map(disk => ({
    disk,
    otherConfig: replicaVdiKeys(
      id,
      o.srUuid,
      { vdiUuid: disk.vdi.uuid, contentKey: contentKeyOf(disk.vdi) },
      PLACEHOLDER_DATETIME,
    ),
  }))
  const created = await createReplicaVm({
    target,
    metadata: manifest.metadata,
    sr: srRef,
    name,
    otherConfig: replicaVmKeys(id, o.srUuid, manifest.snapshot.uuid, PLACEHOLDER_DATETIME),
    disks,
    policy: REPLICA_POLICY,
    networkMap: o.job.networkMap,
    cleanup,
    ...opts,
    warn: (code, message) => emit({ kind: 'seed-warning', code, message }),
  })
  for (const [i, d] of disks.entries()) {
    const entry = manifest.disks.find(m => m.vdiUuid === d.disk.vdi.uuid)!
    const { bytes } = await importVdi(target, created.vdis[i]!, createReadStream(join(o.dir, entry.file)), {
      format: 'vhd',
      ...opts,
      onProgress: importProgress(emit, entry.file, entry.userdevice, entry.virtualSize),
    })
    emit({ kind: 'seed-file-done', file: entry.file, userdevice: entry.userdevice, bytes, direction: 'import' })
  }
  return created.vm
}

/**
 * The XVA imported as `xe vm-import` does (XAPI builds the VM, its disks and VIFs). An exported
 * snapshot comes back as a template: it is made a plain VM, as the seed procedure says.
 */
async function importXva(
  o: ImportSeedOptions,
  manifest: SeedManifest,
  srRef: Ref<'SR'>,
  cleanup: CleanupStack,
  emit: Emit,
): Promise<Ref<'VM'>> {
  const { target } = o
  const opts = o.signal === undefined ? {} : { signal: o.signal }
  const entry = manifest.disks[0]!
  const path = join(o.dir, entry.file)
  const { vms } = await importVmXva(target, () => createReadStream(path), {
    sr: srRef,
    length: entry.bytes,
    ...opts,
    onProgress: importProgress(
      emit,
      entry.file,
      'all',
      manifest.disks.reduce((n, d) => n + d.virtualSize, 0),
    ),
  })
  for (const vm of vms) cleanup.defer(`imported VM ${vm}`, () => destroyVmAndDisks(target, vm))
  emit({ kind: 'seed-file-done', file: entry.file, userdevice: 'all', bytes: entry.bytes, direction: 'import' })
  if (vms.length !== 1)
    throw new SeedRefusal('SEED_MANIFEST_INVALID', `${path} holds ${vms.length} VMs; a seed XVA holds the one snapshot`)
  const vm = vms[0]!
  try {
    await setVmIsATemplate(target, vm, false, opts)
  } catch (error) {
    if (!isXapiError(error, 'LICENCE_RESTRICTION')) throw error
  }
  return vm
}

/** The upload meter's reports (one per MiB of its exact Content-Length) as throttled `seed-file-progress` events. */
function importProgress(
  emit: Emit,
  file: string,
  userdevice: string,
  virtualSize: number,
): (progress: ByteProgress) => void {
  return throttleProgress(p =>
    emit({
      kind: 'seed-file-progress',
      file,
      userdevice,
      bytes: p.bytes,
      ...(p.total === undefined ? {} : { total: p.total }),
      virtualSize,
      direction: 'import',
    }),
  )
}
