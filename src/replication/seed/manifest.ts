/**
 * The guided seed's manifest (`manifest.json` beside the disk files): who the seed is for, the
 * snapshot's VM metadata (what the target needs to build the replica without seeing the source),
 * and per disk its file, size and sha256. Written atomically; read with checks so that a
 * hand-edited or truncated manifest is refused before anything is written on a pool.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Writable } from 'node:stream'
import type { DeltaVmMetadata } from '../../delta/vm-metadata.js'
import { isUuid } from '../../jobs/job-document.js'
import { SeedRefusal } from './seed-refusal.js'

export const MANIFEST_FILE = 'manifest.json'
export const MANIFEST_KIND = 'xen-cr-seed'

export interface SeedManifestDisk {
  readonly userdevice: string
  /** the source snapshot's disk */
  readonly vdiUuid: string
  readonly name: string
  readonly virtualSize: number
  /** file name inside the seed folder: the disk's VHD, or the one XVA holding every disk */
  readonly file: string
  readonly format: 'vhd' | 'xva'
  /** size and sha256 of `file` */
  readonly bytes: number
  readonly sha256: string
}

export interface SeedManifest {
  readonly kind: typeof MANIFEST_KIND
  readonly version: 1
  readonly createdAt: string
  readonly job: { readonly id: string; readonly name: string }
  readonly scheduleId: string
  readonly vm: { readonly uuid: string; readonly name: string }
  readonly snapshot: { readonly uuid: string; readonly name: string; readonly datetime: string }
  /** the snapshot's VM, VBD, VDI and VIF records (refs are the source pool's) */
  readonly metadata: DeltaVmMetadata
  readonly disks: readonly SeedManifestDisk[]
}

/** Writes `manifest.json` into `dir` (temp file + rename: a crash never leaves half a manifest). */
export async function writeManifest(dir: string, manifest: SeedManifest): Promise<string> {
  const path = join(dir, MANIFEST_FILE)
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 })
  await rename(tmp, path)
  return path
}

function invalid(dir: string, what: string): SeedRefusal {
  return new SeedRefusal(
    'SEED_MANIFEST_INVALID',
    `${join(dir, MANIFEST_FILE)}: ${what}; use the folder written by xen-cr seed export, unchanged`,
  )
}

type JsonObject = Readonly<Record<string, unknown>>

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const field = (value: unknown, key: string): unknown => (isObject(value) ? value[key] : undefined)

const isString = (value: unknown): value is string => typeof value === 'string'

const isUuidString = (value: unknown): value is string => isString(value) && isUuid(value)

const isSafeInteger = (value: unknown): value is number => Number.isSafeInteger(value)

/** Reads and checks the manifest of a seed folder. */
export async function readManifest(dir: string): Promise<SeedManifest> {
  let raw: unknown
  try {
    raw = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8'))
  } catch (error) {
    const code = (error as { code?: unknown }).code
    throw invalid(dir, code === 'ENOENT' ? 'not found' : 'not valid JSON')
  }
  return parseManifest(dir, raw)
}

/** The manifest `raw` says, checked field by field; refuses anything a hand edit or truncation could leave. */
function parseManifest(dir: string, raw: unknown): SeedManifest {
  if (!isObject(raw) || raw['kind'] !== MANIFEST_KIND || raw['version'] !== 1)
    throw invalid(dir, 'not a xen-cr seed manifest (version 1)')
  const { job, vm, snapshot, scheduleId, createdAt } = raw
  const jobId = field(job, 'id')
  if (!isUuidString(jobId) || !isUuidString(scheduleId)) throw invalid(dir, 'job or schedule id missing')
  const jobName = field(job, 'name')
  if (!isString(jobName)) throw invalid(dir, 'job name missing')
  const [vmUuid, vmName] = [field(vm, 'uuid'), field(vm, 'name')]
  if (!isUuidString(vmUuid) || !isString(vmName)) throw invalid(dir, 'source VM missing')
  const [snapUuid, snapName, snapDatetime] = [
    field(snapshot, 'uuid'),
    field(snapshot, 'name'),
    field(snapshot, 'datetime'),
  ]
  if (!isUuidString(snapUuid) || !isString(snapName) || !isString(snapDatetime)) throw invalid(dir, 'snapshot missing')
  if (!isString(createdAt)) throw invalid(dir, 'creation date missing')
  const metadata = parseMetadata(dir, raw['metadata'])
  const disks = parseDisks(dir, raw['disks'], metadata)
  return {
    kind: MANIFEST_KIND,
    version: 1,
    createdAt,
    job: { id: jobId, name: jobName },
    scheduleId,
    vm: { uuid: vmUuid, name: vmName },
    snapshot: { uuid: snapUuid, name: snapName, datetime: snapDatetime },
    metadata,
    disks,
  }
}

/**
 * The VM metadata, checked as far as the seed reads it (each disk's VDI uuid and userdevice).
 * The records themselves are the snapshot's as the export read them from XAPI, and go back to
 * XAPI as they are; the target pool checks them when it creates the replica.
 */
function parseMetadata(dir: string, raw: unknown): DeltaVmMetadata {
  const disks = field(raw, 'disks')
  if (!isObject(field(raw, 'vm')) || !Array.isArray(disks) || !Array.isArray(field(raw, 'vifs')))
    throw invalid(dir, 'VM metadata missing')
  for (const disk of disks as unknown[]) {
    if (!isString(field(field(disk, 'vdi'), 'uuid')) || !isString(field(field(disk, 'vbd'), 'userdevice')))
      throw invalid(dir, 'VM metadata missing')
  }
  return raw as DeltaVmMetadata
}

function parseDisks(dir: string, raw: unknown, metadata: DeltaVmMetadata): SeedManifestDisk[] {
  if (!Array.isArray(raw) || raw.length === 0 || raw.length !== metadata.disks.length)
    throw invalid(dir, 'disk list missing or inconsistent')
  const disks = (raw as unknown[]).map(d => parseDisk(dir, d, metadata))
  // a seed is VHD files or one XVA, never both
  const mixed = disks.find(d => d.format !== disks[0]!.format)
  if (mixed !== undefined) throw invalid(dir, `disk ${mixed.file} has no valid format, size or sha256`)
  if (disks[0]!.format === 'xva' && new Set(disks.map(d => `${d.file} ${d.sha256}`)).size !== 1)
    throw invalid(dir, 'the disks of an XVA seed must all name the one XVA file')
  return disks
}

function parseDisk(dir: string, raw: unknown, metadata: DeltaVmMetadata): SeedManifestDisk {
  const file = field(raw, 'file')
  // A file name that leaves the folder would make the import read anything on this host.
  if (!isString(file) || file !== basename(file) || file.startsWith('.'))
    throw invalid(dir, `disk file name ${JSON.stringify(file)} is not a plain file name`)
  const [format, sha256, bytes, virtualSize] = ['format', 'sha256', 'bytes', 'virtualSize'].map(k => field(raw, k))
  if (
    (format !== 'vhd' && format !== 'xva') ||
    !isString(sha256) ||
    !/^[0-9a-f]{64}$/.test(sha256) ||
    !isSafeInteger(bytes) ||
    !isSafeInteger(virtualSize)
  )
    throw invalid(dir, `disk ${file} has no valid format, size or sha256`)
  const [vdiUuid, userdevice, name] = [field(raw, 'vdiUuid'), field(raw, 'userdevice'), field(raw, 'name')]
  if (!isString(vdiUuid) || !isString(userdevice) || !isString(name))
    throw invalid(dir, `disk ${file} has no valid disk uuid, userdevice or name`)
  if (!metadata.disks.some(md => md.vdi.uuid === vdiUuid && md.vbd.userdevice === userdevice))
    throw invalid(dir, `disk ${file} is not in the VM metadata`)
  return { userdevice, vdiUuid, name, virtualSize, file, format, bytes, sha256 }
}

/** sha256 and length of a file, streamed. */
export async function hashFile(path: string, signal?: AbortSignal): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256')
  let bytes = 0
  await pipeline(
    createReadStream(path),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        hash.update(chunk)
        bytes += chunk.length
        callback()
      },
    }),
    signal === undefined ? {} : { signal },
  )
  return { sha256: hash.digest('hex'), bytes }
}

/**
 * Re-hashes every disk file of a seed folder against its manifest.
 * @throws SeedRefusal `SEED_FILE_MISMATCH` naming the first file that differs or is missing
 */
export async function checkManifestFiles(dir: string, manifest: SeedManifest, signal?: AbortSignal): Promise<void> {
  // an XVA seed names its one file from every disk: hash it once
  const files = [...new Map(manifest.disks.map(d => [d.file, d])).values()]
  for (const disk of files) {
    const path = join(dir, disk.file)
    let actual: { sha256: string; bytes: number }
    try {
      actual = await hashFile(path, signal)
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ENOENT')
        throw new SeedRefusal('SEED_FILE_MISMATCH', `${path} is missing; copy the whole seed folder`)
      throw error
    }
    if (actual.bytes !== disk.bytes || actual.sha256 !== disk.sha256) {
      throw new SeedRefusal(
        'SEED_FILE_MISMATCH',
        `${path} does not match the manifest (${actual.bytes} bytes, sha256 ${actual.sha256.slice(0, 12)}…; expected ${disk.bytes} bytes, ${disk.sha256.slice(0, 12)}…); copy it again`,
      )
    }
  }
}
