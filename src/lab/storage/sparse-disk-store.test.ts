import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { makeTempDir } from '../../../test/helpers/tmp.js'
import { guestBlock } from './guest-data.js'
import { SparseDiskStore } from './sparse-disk-store.js'
import { BLOCK_SIZE } from './types.js'

const MiB = 1024 * 1024

let tmp: { path: string; remove: () => Promise<void> }
let store: SparseDiskStore

beforeEach(async () => {
  tmp = await makeTempDir()
  store = await SparseDiskStore.open(tmp.path)
})
afterEach(async () => {
  await store.close()
  await tmp.remove()
})

function bytes(length: number, value: number): Buffer {
  return Buffer.alloc(length, value)
}

describe('SparseDiskStore', () => {
  it('reads a new disk as zeros and returns what was written, across block boundaries', async () => {
    await store.create('a', 8 * MiB)
    expect((await store.read('a', 0, 8 * MiB)).equals(Buffer.alloc(8 * MiB))).toBe(true)
    const data = bytes(1 * MiB, 0x5a)
    await store.write('a', BLOCK_SIZE - 512 * 1024, data)
    const back = await store.read('a', BLOCK_SIZE - 512 * 1024 - 10, 1 * MiB + 20)
    expect(back.subarray(0, 10).equals(Buffer.alloc(10))).toBe(true)
    expect(back.subarray(10, 10 + MiB).equals(data)).toBe(true)
    expect(back.subarray(10 + MiB).equals(Buffer.alloc(10))).toBe(true)
    expect(store.allocatedBlocks('a')).toEqual([0, 1])
    expect(store.info('a')?.physicalUtilisation).toBe(2 * BLOCK_SIZE)
  })

  it('copies a partially written block up from the chain so older bytes survive in the new leaf', async () => {
    await store.create('vm', 4 * MiB)
    await store.write('vm', 0, bytes(BLOCK_SIZE, 0x11))
    await store.snapshot('vm', 'snap')
    await store.write('vm', 100, bytes(10, 0x22))
    const block = await store.readBlock('vm', 0)
    expect(block[99]).toBe(0x11)
    expect(block.subarray(100, 110).equals(bytes(10, 0x22))).toBe(true)
    expect(block[110]).toBe(0x11)
    expect(block[BLOCK_SIZE - 1]).toBe(0x11)
    expect((await store.readBlock('snap', 0)).equals(bytes(BLOCK_SIZE, 0x11))).toBe(true)
  })

  it('freezes content at snapshot time and refuses writes to snapshots', async () => {
    await store.create('vm', 6 * MiB)
    await store.write('vm', 0, bytes(BLOCK_SIZE, 1))
    const snap = await store.snapshot('vm', 's1')
    expect(snap.readOnly).toBe(true)
    await store.write('vm', 0, bytes(BLOCK_SIZE, 2))
    expect((await store.read('s1', 0, 4)).equals(bytes(4, 1))).toBe(true)
    expect((await store.read('vm', 0, 4)).equals(bytes(4, 2))).toBe(true)
    await expect(store.write('s1', 0, bytes(1, 9))).rejects.toMatchObject({ code: 'LAB_DISK_READ_ONLY' })
  })

  it('reports as changed exactly the blocks allocated in the symmetric difference of two chains', async () => {
    await store.create('vm', 20 * MiB)
    await store.write('vm', 0, bytes(3 * BLOCK_SIZE, 7))
    await store.snapshot('vm', 's1')
    await store.write('vm', 3 * BLOCK_SIZE + 5, bytes(1, 1)) // block 3
    await store.write('vm', 5 * BLOCK_SIZE, bytes(BLOCK_SIZE, 0)) // block 5, rewritten with zeros
    await store.write('vm', 1 * BLOCK_SIZE, bytes(1, 3)) // block 1, already in the base
    await store.snapshot('vm', 's2')
    expect(store.changedBlocks('s2', 's1')).toEqual([1, 3, 5])
    expect(store.changedBlocks('s1', 's2')).toEqual([1, 3, 5])
    expect(store.changedBlocks('s2', 's2')).toEqual([])
    expect(store.allocatedBlocks('s2')).toEqual([0, 1, 2, 3, 5])
    expect(store.allocatedBlocks('s1')).toEqual([0, 1, 2])
    // a clone of s1 shares s1's layers: after writing block 9 to it, only block 9 differs
    await store.clone('s1', 'copy')
    await store.write('copy', 9 * BLOCK_SIZE, bytes(BLOCK_SIZE, 4))
    expect(store.changedBlocks('copy', 's1')).toEqual([9])
    expect(store.changedBlocks('copy', 's2')).toEqual([1, 3, 5, 9])
  })

  it('keeps clones independent of their source and of each other', async () => {
    await store.create('vm', 4 * MiB)
    await store.write('vm', 0, bytes(8, 1))
    const clone = await store.clone('vm', 'c')
    expect(clone.readOnly).toBe(false)
    await store.write('c', 0, bytes(8, 2))
    await store.write('vm', 0, bytes(8, 3))
    expect((await store.read('c', 0, 8)).equals(bytes(8, 2))).toBe(true)
    expect((await store.read('vm', 0, 8)).equals(bytes(8, 3))).toBe(true)
  })

  it('deletes the files of layers no remaining disk uses, and only those', async () => {
    await store.create('vm', 4 * MiB)
    await store.write('vm', 0, bytes(BLOCK_SIZE, 1))
    await store.snapshot('vm', 's1')
    await store.write('vm', 0, bytes(BLOCK_SIZE, 2))
    const layerFiles = async (): Promise<string[]> => (await readdir(join(tmp.path, 'layers'))).sort()
    expect(await layerFiles()).toHaveLength(2)
    await store.destroy('vm')
    // the vm's own leaf goes; the frozen layer stays because s1 uses it
    expect(await layerFiles()).toEqual([`${store.info('s1')?.layers[0]}.img`])
    expect((await store.read('s1', 0, 4)).equals(bytes(4, 1))).toBe(true)
    await store.destroy('s1')
    expect(await layerFiles()).toEqual([])
    expect(store.info('s1')).toBeUndefined()
    await expect(store.readBlock('s1', 0)).rejects.toMatchObject({ code: 'LAB_DISK_NOT_FOUND' })
  })

  it('coalesces a layer left with one child, as SM does: snapshot-and-rotate keeps a short chain and only live blocks', async () => {
    // a pass snapshots the disk and deletes the previous snapshot; the guest rewrites block 0
    await store.create('vm', 8 * MiB)
    await store.write('vm', 0, bytes(4 * MiB, 1))
    let previous: string | undefined
    for (let round = 2; round <= 7; round++) {
      await store.snapshot('vm', `s${round}`)
      if (previous !== undefined) await store.destroy(previous)
      previous = `s${round}`
      await store.write('vm', 0, bytes(BLOCK_SIZE, round))
    }
    // the live disk: one coalesced base (block 0 as of s7, block 1) and its own leaf; s7 ends at that base
    expect(store.info('vm')?.layers).toHaveLength(2)
    expect(store.info('s7')?.layers).toEqual(store.info('vm')?.layers.slice(0, 1))
    const base = store.info('s7')?.layers[0] as string
    expect(store.layerBytes(base)).toBe(2 * BLOCK_SIZE)
    expect((await store.readBlock('s7', 0)).equals(bytes(BLOCK_SIZE, 6))).toBe(true)
    expect((await store.readBlock('s7', 1)).equals(bytes(BLOCK_SIZE, 1))).toBe(true)
    expect((await store.readBlock('vm', 0)).equals(bytes(BLOCK_SIZE, 7))).toBe(true)
    expect(store.changedBlocks('vm', 's7')).toEqual([0])
    // the coalesced layers' files are gone with the destroy that coalesced them
    expect((await readdir(join(tmp.path, 'layers'))).sort()).toEqual(
      (store.info('vm')?.layers ?? []).map(layer => `${layer}.img`).sort(),
    )
    await store.close()
    store = await SparseDiskStore.open(tmp.path)
    expect((await store.readBlock('s7', 0)).equals(bytes(BLOCK_SIZE, 6))).toBe(true)
    expect((await store.readBlock('vm', 0)).equals(bytes(BLOCK_SIZE, 7))).toBe(true)
    expect((await store.readBlock('vm', 1)).equals(bytes(BLOCK_SIZE, 1))).toBe(true)
  })

  it('answers reads of a snapshot correctly while deleting the one before coalesces the chain under it', async () => {
    await store.create('vm', 8 * MiB)
    const model = [0, 0, 0, 0]
    for (let round = 1; round <= 12; round++) {
      const index = round % 4
      await store.write('vm', index * BLOCK_SIZE, bytes(BLOCK_SIZE, round))
      model[index] = round
      await store.snapshot('vm', `s${round}`)
      const expected = [...model]
      // every block of the new snapshot, read over and over while the previous snapshot goes
      let destroying = true
      const wrong: string[] = []
      const reader = (async () => {
        do {
          for (const [i, value] of expected.entries())
            if (!(await store.readBlock(`s${round}`, i)).equals(bytes(BLOCK_SIZE, value))) wrong.push(`s${round}[${i}]`)
        } while (destroying)
      })()
      if (round > 1) await store.destroy(`s${round - 1}`)
      destroying = false
      await reader
      expect(wrong).toEqual([])
    }
    expect(store.info('vm')?.layers).toHaveLength(2)
  })

  it('keeps a destroy that a failed coalesce followed, and the pair as it was', async () => {
    await store.create('vm', 4 * MiB)
    await store.write('vm', 0, bytes(BLOCK_SIZE, 1))
    await store.snapshot('vm', 's1')
    await store.write('vm', 0, bytes(BLOCK_SIZE, 2))
    await store.snapshot('vm', 's2')
    // s2's leaf is what deleting s1 would coalesce; its file cannot be read (opened afresh)
    await store.close()
    store = await SparseDiskStore.open(tmp.path)
    const child = store.info('s2')?.layers[1] as string
    await rm(join(tmp.path, 'layers', `${child}.img`))
    await store.destroy('s1')
    expect(store.info('s1')).toBeUndefined()
    expect(store.info('s2')?.layers).toHaveLength(2)
    expect(store.info('vm')?.layers).toHaveLength(3)
  })

  it('never coalesces into a writable leaf, nor a layer two disks grow apart from', async () => {
    await store.create('vm', 4 * MiB)
    await store.write('vm', 0, bytes(BLOCK_SIZE, 1))
    await store.snapshot('vm', 's1')
    await store.clone('s1', 'copy')
    await store.write('vm', 0, bytes(BLOCK_SIZE, 2))
    await store.destroy('s1')
    // the frozen layer still has two children (vm's leaf, copy's leaf), both writable
    const [frozen] = store.info('vm')?.layers ?? []
    expect(store.info('vm')?.layers).toHaveLength(2)
    expect(store.info('copy')?.layers[0]).toBe(frozen)
    await store.destroy('copy')
    // now the frozen layer has one child, but it is the writable disk's leaf: left as it is
    expect(store.info('vm')?.layers).toHaveLength(2)
    expect((await store.read('vm', 0, 4)).equals(bytes(4, 2))).toBe(true)
  })

  it('deletes layer files no metadata names when it opens (a crash between making a layer and recording it)', async () => {
    await store.create('vm', 4 * MiB)
    await store.close()
    const stray = join(tmp.path, 'layers', '0f0e0d0c-0000-4000-8000-000000000000.img')
    await writeFile(stray, 'x')
    store = await SparseDiskStore.open(tmp.path)
    expect(await readdir(join(tmp.path, 'layers'))).toEqual([`${store.info('vm')?.layers[0]}.img`])
  })

  it('finds every disk and its content again when reopened on the same folder', async () => {
    await store.create('vm', 4 * MiB)
    await store.write('vm', MiB, bytes(16, 9))
    await store.snapshot('vm', 's')
    await store.close()
    store = await SparseDiskStore.open(tmp.path)
    expect(store.info('s')?.readOnly).toBe(true)
    expect(store.allocatedBlocks('s')).toEqual([0])
    expect((await store.read('s', MiB, 16)).equals(bytes(16, 9))).toBe(true)
    await store.write('vm', 0, bytes(1, 1))
    expect(store.changedBlocks('vm', 's')).toEqual([0])
  })

  it('records block allocations on its own shortly after writes, without flush or close', async () => {
    // a lab killed without close() must not lose the blocks written before the last structural change
    await store.create('vm', 8 * MiB)
    await store.write('vm', 5 * MiB, bytes(1, 1))
    const leaf = store.info('vm')?.layers[0] as string
    for (;;) {
      const state = JSON.parse(await readFile(join(tmp.path, 'store.json'), 'utf8')) as {
        layers: Record<string, number[]>
      }
      if ((state.layers[leaf] ?? []).length > 0) {
        expect(state.layers[leaf]).toEqual([2])
        break
      }
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  })

  it('fills deterministically from a seed', async () => {
    await store.create('a', 5 * MiB)
    await store.create('b', 5 * MiB)
    await store.fill('a', { bytes: 3 * MiB, seed: 42 })
    await store.fill('b', { bytes: 3 * MiB, seed: 42 })
    expect(store.allocatedBlocks('a')).toEqual([0, 1])
    expect((await store.read('a', 0, 4 * MiB)).equals(await store.read('b', 0, 4 * MiB))).toBe(true)
    expect((await store.readBlock('a', 1)).equals(guestBlock(42, 1))).toBe(true)
    expect(guestBlock(42, 0).equals(guestBlock(42, 1))).toBe(false)
    expect(guestBlock(42, 0).equals(guestBlock(43, 0))).toBe(false)
    // the last, partial block is cut at the virtual size
    await store.fill('a', { bytes: 5 * MiB, seed: 1 })
    const last = await store.readBlock('a', 2)
    expect(last.subarray(0, MiB).equals(guestBlock(1, 2).subarray(0, MiB))).toBe(true)
    expect(last.subarray(MiB).equals(Buffer.alloc(BLOCK_SIZE - MiB))).toBe(true)
  })

  it('grows but never shrinks, and refuses writes past the end', async () => {
    await store.create('a', 2 * MiB)
    await expect(store.write('a', 2 * MiB - 1, bytes(2, 1))).rejects.toMatchObject({ code: 'LAB_DISK_RANGE' })
    await store.resize('a', 4 * MiB)
    await store.write('a', 2 * MiB - 1, bytes(2, 1))
    expect(store.allocatedBlocks('a')).toEqual([0, 1])
    await expect(store.resize('a', MiB)).rejects.toMatchObject({ code: 'LAB_DISK_SHRINK' })
  })

  it('stores a 2 TiB disk with a few blocks written in little more than those blocks', async () => {
    const TiB = 1024 * 1024 * MiB
    await store.create('big', 2 * TiB)
    const last = Math.ceil((2 * TiB) / BLOCK_SIZE) - 1
    await store.write('big', 0, bytes(BLOCK_SIZE, 1))
    await store.write('big', TiB + 3, bytes(100, 2))
    await store.write('big', last * BLOCK_SIZE, bytes(BLOCK_SIZE, 3))
    await store.flush()
    let used = 0
    for (const name of await readdir(join(tmp.path, 'layers')))
      used += (await stat(join(tmp.path, 'layers', name))).blocks * 512
    expect(used).toBeLessThanOrEqual(3 * BLOCK_SIZE + MiB)
    expect((await stat(join(tmp.path, 'store.json'))).size).toBeLessThan(4096)
    expect((await store.read('big', TiB, 8)).equals(Buffer.from([0, 0, 0, 2, 2, 2, 2, 2]))).toBe(true)
    expect(store.allocatedBlocks('big')).toEqual([0, TiB / BLOCK_SIZE, last])
  })
})
