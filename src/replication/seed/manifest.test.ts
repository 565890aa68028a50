import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { checkManifestFiles, readManifest, writeManifest, type SeedManifest } from './manifest.js'
import { sampleBlocks } from './verify-seed.js'

const U = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'xen-cr-manifest-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

function manifest(file: string, sha256: string, bytes: number): SeedManifest {
  return {
    kind: 'xen-cr-seed',
    version: 1,
    createdAt: '2026-01-01T00:00:00.000Z',
    job: { id: U(1), name: 'nightly' },
    scheduleId: U(2),
    vm: { uuid: U(3), name: 'web' },
    snapshot: { uuid: U(4), name: '[XO Backup nightly] web', datetime: '20260101T00:00:00Z' },
    metadata: {
      vmRef: 'OpaqueRef:x',
      vm: {},
      disks: [{ vbd: { userdevice: '0' }, vdiRef: 'OpaqueRef:y', vdi: { uuid: U(5) } }],
      vifs: [],
    } as unknown as SeedManifest['metadata'],
    disks: [{ userdevice: '0', vdiUuid: U(5), name: 'root', virtualSize: 2 << 20, file, format: 'vhd', bytes, sha256 }],
  }
}

// sha256 of the 5 bytes "hello"
const HELLO = '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'

describe('seed manifest', () => {
  it('round-trips and accepts files that match it', async () => {
    await writeFile(join(dir, 'disk.vhd'), 'hello')
    await writeManifest(dir, manifest('disk.vhd', HELLO, 5))
    const read = await readManifest(dir)
    expect(read.disks[0]?.sha256).toBe(HELLO)
    await expect(checkManifestFiles(dir, read)).resolves.toBeUndefined()
  })

  it('refuses a changed file, a missing one, and a file name that leaves the folder', async () => {
    await writeFile(join(dir, 'disk.vhd'), 'hellO')
    await writeManifest(dir, manifest('disk.vhd', HELLO, 5))
    await expect(checkManifestFiles(dir, await readManifest(dir))).rejects.toMatchObject({ code: 'SEED_FILE_MISMATCH' })
    await writeManifest(dir, manifest('gone.vhd', HELLO, 5))
    await expect(checkManifestFiles(dir, await readManifest(dir))).rejects.toMatchObject({ code: 'SEED_FILE_MISMATCH' })
    await writeManifest(dir, manifest('../../etc/passwd', HELLO, 5))
    await expect(readManifest(dir)).rejects.toMatchObject({ code: 'SEED_MANIFEST_INVALID' })
    await writeFile(join(dir, 'manifest.json'), '{"kind":"something else"}')
    await expect(readManifest(dir)).rejects.toMatchObject({ code: 'SEED_MANIFEST_INVALID' })
  })
})

describe('sampleBlocks', () => {
  it('picks distinct ascending blocks inside the disk, and every block when asked for as many', () => {
    let x = 0.77
    const random = (): number => (x = (x * 9301 + 0.49297) % 1)
    const picked = sampleBlocks(1000, 16, random)
    expect(picked).toHaveLength(16)
    expect(new Set(picked).size).toBe(16)
    expect([...picked].sort((a, b) => a - b)).toEqual(picked)
    expect(picked.every(b => b >= 0 && b < 1000)).toBe(true)
    expect(sampleBlocks(5, 8, random)).toEqual([0, 1, 2, 3, 4])
    // a degenerate source still ends: collisions take the next free block
    expect(sampleBlocks(4, 3, () => 0.9)).toEqual([0, 1, 3])
  })
})
