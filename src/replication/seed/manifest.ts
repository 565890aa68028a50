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
import { SeedRefusal } from './plan-seed.js'

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

/** Reads and checks the manifest of a seed folder. */
export async function readManifest(dir: string): Promise<SeedManifest> {
  let raw: unknown
  try {
    raw = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8'))
  } catch (error) {
    const code = (error as { code?: unknown }).code
    throw invalid(dir, code === 'ENOENT' ? 'not found' : 'not valid JSON')
  }
  const m = raw as Partial<SeedManifest> | null
  if (m === null || typeof m !== 'object' || m.kind !== MANIFEST_KIND || m.version !== 1)
    throw invalid(dir, 'not a xen-cr seed manifest (version 1)')
  if (typeof m.job?.id !== 'string' || !isUuid(m.job.id) || typeof m.scheduleId !== 'string' || !isUuid(m.scheduleId))
    throw invalid(dir, 'job or schedule id missing')
  if (typeof m.snapshot?.uuid !== 'string' || !isUuid(m.snapshot.uuid) || typeof m.snapshot.datetime !== 'string')
    throw invalid(dir, 'snapshot missing')
  if (typeof m.metadata?.vm !== 'object' || !Array.isArray(m.metadata.disks) || !Array.isArray(m.metadata.vifs))
    throw invalid(dir, 'VM metadata missing')
  if (!Array.isArray(m.disks) || m.disks.length === 0 || m.disks.length !== m.metadata.disks.length)
    throw invalid(dir, 'disk list missing or inconsistent')
  for (const d of m.disks) {
    // A file name that leaves the folder would make the import read anything on this host.
    if (typeof d.file !== 'string' || d.file !== basename(d.file) || d.file.startsWith('.'))
      throw invalid(dir, `disk file name ${JSON.stringify(d.file)} is not a plain file name`)
    if (
      (d.format !== 'vhd' && d.format !== 'xva') ||
      d.format !== m.disks[0]!.format ||
      !/^[0-9a-f]{64}$/.test(d.sha256) ||
      !Number.isSafeInteger(d.bytes) ||
      !Number.isSafeInteger(d.virtualSize)
    )
      throw invalid(dir, `disk ${d.file} has no valid format, size or sha256`)
    if (!m.metadata.disks.some(md => md.vdi.uuid === d.vdiUuid && md.vbd.userdevice === d.userdevice))
      throw invalid(dir, `disk ${d.file} is not in the VM metadata`)
  }
  if (m.disks[0]!.format === 'xva' && new Set(m.disks.map(d => `${d.file} ${d.sha256}`)).size !== 1)
    throw invalid(dir, 'the disks of an XVA seed must all name the one XVA file')
  return m as SeedManifest
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
