import { randomUUID } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { LabDiskError } from '../lab-error.js'
import { guestBlock } from './guest-data.js'
import { BLOCK_SIZE } from './types.js'
import type { DiskId, DiskInfo, DiskStore, FillSpec } from './types.js'

interface DiskState {
  virtualSize: number
  readOnly: boolean
  layers: string[]
}

/** What `store.json` holds: every disk and, per layer, the blocks it holds. */
interface PersistedState {
  version: 1
  disks: Record<string, DiskState>
  layers: Record<string, number[]>
}

const METADATA_FILE = 'store.json'
/** the queue key of garbage collections (destroy, coalesce), which run one at a time */
const COLLECTION = Symbol('collection')
const LAYER_DIR = 'layers'

/**
 * {@link DiskStore} on sparse files: each layer is a sparse file `layers/<id>.img` in which
 * block i lives at byte i × BLOCK_SIZE, plus the set of blocks it holds. Only written blocks
 * take space, so a 2 TiB disk with 1 GiB written costs 1 GiB of disk and a few kilobytes of
 * memory. Metadata (`store.json`) is rewritten atomically after every structural change, on
 * `flush()`, and shortly after writes (so a killed lab loses at most the last half second of
 * block allocations).
 */
export class SparseDiskStore implements DiskStore {
  readonly #dir: string
  readonly #disks = new Map<DiskId, DiskState>()
  readonly #layers = new Map<string, Set<number>>()
  readonly #handles = new Map<string, Promise<FileHandle>>()
  /**
   * What `info()` answers, per disk, until the disk changes: the SR refresh after every disk
   * change asks it for every disk of the SR, which must not copy every chain each time.
   */
  readonly #infos = new Map<DiskId, DiskInfo>()
  /**
   * `store.json`'s pieces as last written, per disk (`"id":{…}`) and per layer (`"id":[blocks]`),
   * dropped when the disk or layer changes: a rewrite serialises only what changed since the
   * last one, not the whole store (it runs after every snapshot, clone and destroy).
   */
  readonly #diskJson = new Map<DiskId, string>()
  readonly #layerJson = new Map<string, string>()
  /**
   * per-disk queue: a write's copy-up must not interleave with another write or a snapshot; and
   * one for garbage collection ({@link COLLECTION}): a coalesce must not write into a layer that
   * another destroy deletes
   */
  readonly #locks = new Map<DiskId | typeof COLLECTION, Promise<unknown>>()
  #persisting: Promise<void> = Promise.resolve()
  /** the rewrite queued behind the running one, not started yet */
  #nextPersist: Promise<void> | undefined
  #persistTimer: NodeJS.Timeout | undefined
  /** the block a coalesce copies through, kept: a fresh 2 MiB buffer per pass is work for the GC */
  #copyBuffer: Buffer | undefined
  #closed = false

  private constructor(dir: string) {
    this.#dir = dir
  }

  /** Opens the store in `dir`, creating it or finding every disk a previous store left there. */
  static async open(dir: string): Promise<SparseDiskStore> {
    const store = new SparseDiskStore(dir)
    await mkdir(join(dir, LAYER_DIR), { recursive: true })
    let text: string | undefined
    try {
      text = await readFile(join(dir, METADATA_FILE), 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    if (text !== undefined) {
      let state: PersistedState
      try {
        state = JSON.parse(text) as PersistedState
      } catch (error) {
        throw new LabDiskError(
          'LAB_STORE_CORRUPT',
          `lab disk store ${dir}: ${METADATA_FILE} is not valid JSON; delete the folder to start afresh`,
          { cause: error },
        )
      }
      for (const [id, disk] of Object.entries(state.disks)) store.#disks.set(id, { ...disk, layers: [...disk.layers] })
      for (const [id, blocks] of Object.entries(state.layers)) store.#layers.set(id, new Set(blocks))
    }
    // files no layer names: made just before a crash (a new layer not yet recorded), or a
    // coalesced layer whose file was not deleted yet
    for (const name of await readdir(join(dir, LAYER_DIR)))
      if (name.endsWith('.img') && !store.#layers.has(name.slice(0, -'.img'.length)))
        await rm(join(dir, LAYER_DIR, name), { force: true })
    return store
  }

  async create(id: DiskId, virtualSize: number): Promise<DiskInfo> {
    this.#checkOpen()
    if (this.#disks.has(id)) throw new LabDiskError('LAB_DISK_EXISTS', `lab disk ${id} already exists`)
    checkSize(id, virtualSize)
    const layer = await this.#newLayer()
    this.#disks.set(id, { virtualSize, readOnly: false, layers: [layer] })
    this.#diskChanged(id)
    await this.#persist()
    return this.#info(id)
  }

  snapshot(srcId: DiskId, newId: DiskId): Promise<DiskInfo> {
    return this.#derive(srcId, newId, true)
  }

  clone(srcId: DiskId, newId: DiskId): Promise<DiskInfo> {
    return this.#derive(srcId, newId, false)
  }

  async destroy(id: DiskId): Promise<void> {
    this.#checkOpen()
    this.#get(id)
    await this.#locked(id, async () => {
      this.#disks.delete(id)
      this.#diskChanged(id)
      await this.#locked(COLLECTION, () => this.#collect())
    })
    this.#locks.delete(id)
  }

  /**
   * Deletes the layers no disk uses any more and coalesces what the destroy left single-child,
   * with one rewrite of the metadata for both.
   */
  async #collect(): Promise<void> {
    const used = new Set<string>()
    for (const disk of this.#disks.values()) for (const layer of disk.layers) used.add(layer)
    const garbage = [...this.#layers.keys()].filter(layer => !used.has(layer))
    for (const layer of garbage) {
      this.#layers.delete(layer)
      this.#layerJson.delete(layer)
    }
    const coalesced: string[] = []
    try {
      for (let pair = this.#coalescible(); pair !== undefined; pair = this.#coalescible())
        coalesced.push(await this.#coalesce(...pair))
    } catch {
      // Coalescing is housekeeping: a failed copy (a full file system, say) leaves that pair as
      // it was, and the destroy that asked stands; the next destroy tries again.
    }
    await this.#persist()
    // A read that found its block in one of these layers has its read under way by now (the
    // rewrite above took I/O turns); FileHandle.close waits for it.
    for (const layer of [...garbage, ...coalesced]) {
      const handle = this.#handles.get(layer)
      this.#handles.delete(layer)
      if (handle !== undefined) await (await handle).close()
      await rm(this.#layerPath(layer), { force: true })
    }
  }

  /**
   * A layer and the only layer that ever follows it, where the two can become one: every chain
   * that holds `parent` holds `child` right above it, no disk ends at `parent`, and `child` is
   * not a writable disk's leaf (the guest writes there). SM's garbage collector coalesces such a
   * VHD into its parent once a snapshot between them is deleted; without it a disk snapshotted
   * and rotated every pass would gain a layer per pass, and keep every overwritten block.
   */
  #coalescible(): [parent: string, child: string] | undefined {
    const next = new Map<string, string | null>()
    const writableLeaves = new Set<string>()
    for (const disk of this.#disks.values()) {
      disk.layers.forEach((layer, i) => {
        // a disk ending at a layer counts as a second thing growing from it
        const above = disk.layers[i + 1] ?? null
        const seen = next.get(layer)
        next.set(layer, seen === undefined || seen === above ? above : null)
      })
      if (!disk.readOnly) writableLeaves.add(disk.layers[disk.layers.length - 1] as string)
    }
    for (const [parent, child] of next) if (child !== null && !writableLeaves.has(child)) return [parent, child]
    return undefined
  }

  /**
   * Folds `child` into `parent` (which keeps its id, as SM keeps the parent VHD's uuid): the
   * child's blocks are copied into the parent's file first — no chain reads the parent at those
   * blocks, the child shadows them everywhere — then the metadata names the parent alone (the
   * caller writes it, then deletes the child's file). A crash before that write leaves the old
   * chains intact. Answers the child.
   */
  async #coalesce(parent: string, child: string): Promise<string> {
    const blocks = [...(this.#layers.get(child) ?? [])].sort((a, b) => a - b)
    const from = await this.#handle(child)
    const to = await this.#handle(parent)
    // collections run one at a time: one buffer serves them all
    const buffer = (this.#copyBuffer ??= Buffer.allocUnsafe(BLOCK_SIZE))
    for (const index of blocks) {
      await readFully(from, buffer, index * BLOCK_SIZE)
      await writeFully(to, buffer, index * BLOCK_SIZE)
    }
    // chains only grow above their leaves meanwhile, so the pair still qualifies
    const held = this.#layers.get(parent) as Set<number>
    for (const index of blocks) held.add(index)
    this.#layerJson.delete(parent)
    this.#layers.delete(child)
    this.#layerJson.delete(child)
    for (const [id, disk] of this.#disks) {
      const at = disk.layers.indexOf(child)
      if (at < 0) continue
      disk.layers.splice(at, 1)
      this.#diskChanged(id)
    }
    return child
  }

  async resize(id: DiskId, virtualSize: number): Promise<DiskInfo> {
    this.#checkOpen()
    const disk = this.#get(id)
    checkSize(id, virtualSize)
    if (virtualSize < disk.virtualSize) {
      throw new LabDiskError(
        'LAB_DISK_SHRINK',
        `lab disk ${id}: cannot shrink from ${disk.virtualSize} to ${virtualSize} bytes`,
      )
    }
    disk.virtualSize = virtualSize
    this.#diskChanged(id)
    await this.#persist()
    return this.#info(id)
  }

  info(id: DiskId): DiskInfo | undefined {
    return this.#disks.has(id) ? this.#info(id) : undefined
  }

  /** After a change of the disk's chain, size or leaf blocks: its cached info and JSON are stale. */
  #diskChanged(id: DiskId): void {
    this.#infos.delete(id)
    this.#diskJson.delete(id)
  }

  allocatedBlocks(id: DiskId): number[] {
    return this.#blocksOf(this.#get(id).layers)
  }

  changedBlocks(id: DiskId, baseId: DiskId): number[] {
    const chain = new Set(this.#get(id).layers)
    const base = new Set(this.#get(baseId).layers)
    const difference = [...chain].filter(layer => !base.has(layer)).concat([...base].filter(layer => !chain.has(layer)))
    return this.#blocksOf(difference)
  }

  layerBytes(layer: string): number {
    return (this.#layers.get(layer)?.size ?? 0) * BLOCK_SIZE
  }

  newBlocks(id: DiskId, offset: number, length: number): number {
    if (length <= 0) return 0
    const disk = this.#get(id)
    const held = this.#layers.get(disk.layers[disk.layers.length - 1] as string) ?? new Set<number>()
    let count = 0
    for (let index = Math.floor(offset / BLOCK_SIZE); index * BLOCK_SIZE < offset + length; index++)
      if (!held.has(index)) count++
    return count
  }

  async readBlock(id: DiskId, index: number): Promise<Buffer> {
    const disk = this.#get(id)
    const blockCount = Math.ceil(disk.virtualSize / BLOCK_SIZE)
    if (!Number.isInteger(index) || index < 0 || index >= blockCount) {
      throw new LabDiskError(
        'LAB_DISK_RANGE',
        `lab disk ${id}: block ${index} is outside the disk (${blockCount} blocks)`,
      )
    }
    const layer = this.#holder(disk, index)
    // readFully fills the whole buffer (zeros past the file's end): no need to zero it first
    const block = layer === undefined ? Buffer.alloc(BLOCK_SIZE) : Buffer.allocUnsafe(BLOCK_SIZE)
    if (layer !== undefined) await readFully(await this.#handle(layer), block, index * BLOCK_SIZE)
    // a disk whose size is not a block multiple: the tail of its last block reads as zeros even
    // if an older, larger chain member had data there
    const end = disk.virtualSize - index * BLOCK_SIZE
    if (end < BLOCK_SIZE) block.fill(0, end)
    return block
  }

  async read(id: DiskId, offset: number, length: number): Promise<Buffer> {
    const disk = this.#get(id)
    checkRange(id, disk, offset, length)
    const out = Buffer.alloc(length)
    let done = 0
    while (done < length) {
      const position = offset + done
      const index = Math.floor(position / BLOCK_SIZE)
      const within = position - index * BLOCK_SIZE
      const count = Math.min(BLOCK_SIZE - within, length - done)
      const layer = this.#holder(disk, index)
      if (layer !== undefined) await readFully(await this.#handle(layer), out.subarray(done, done + count), position)
      done += count
    }
    return out
  }

  async write(id: DiskId, offset: number, data: Buffer): Promise<void> {
    this.#checkOpen()
    await this.#locked(id, async () => {
      const disk = this.#get(id)
      if (disk.readOnly)
        throw new LabDiskError('LAB_DISK_READ_ONLY', `lab disk ${id} is a snapshot and cannot be written`)
      checkRange(id, disk, offset, data.length)
      const leaf = disk.layers[disk.layers.length - 1] as string
      const blocks = this.#layers.get(leaf) as Set<number>
      const handle = await this.#handle(leaf)
      let done = 0
      while (done < data.length) {
        const position = offset + done
        const index = Math.floor(position / BLOCK_SIZE)
        const within = position - index * BLOCK_SIZE
        const count = Math.min(BLOCK_SIZE - within, data.length - done)
        const piece = data.subarray(done, done + count)
        if (count < BLOCK_SIZE && !blocks.has(index)) {
          // copy-up: the leaf gets the whole block so it stands alone (reads never merge
          // sectors across layers), with the new bytes laid over the chain's current content
          const block = await this.readBlock(id, index)
          piece.copy(block, within)
          await writeFully(handle, block, index * BLOCK_SIZE)
        } else {
          await writeFully(handle, piece, position)
        }
        if (!blocks.has(index)) {
          blocks.add(index)
          this.#layerJson.delete(leaf)
          this.#infos.delete(id)
        }
        done += count
      }
    })
    this.#schedulePersist()
  }

  async fill(id: DiskId, spec: FillSpec): Promise<void> {
    const disk = this.#get(id)
    const bytes = Math.min(spec.bytes, disk.virtualSize)
    const count = Math.ceil(bytes / BLOCK_SIZE)
    for (let index = 0; index < count; index++) {
      const block = guestBlock(spec.seed, index)
      const room = disk.virtualSize - index * BLOCK_SIZE
      await this.write(id, index * BLOCK_SIZE, room < BLOCK_SIZE ? block.subarray(0, room) : block)
    }
  }

  async flush(): Promise<void> {
    this.#checkOpen()
    await this.#persist()
    for (const handle of this.#handles.values()) await (await handle).datasync()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    clearTimeout(this.#persistTimer)
    await this.#persist()
    this.#closed = true
    await this.#locks.get(COLLECTION)
    const handles = [...this.#handles.values()]
    this.#handles.clear()
    for (const handle of handles) await (await handle).close()
  }

  async #derive(srcId: DiskId, newId: DiskId, readOnly: boolean): Promise<DiskInfo> {
    this.#checkOpen()
    if (this.#disks.has(newId)) throw new LabDiskError('LAB_DISK_EXISTS', `lab disk ${newId} already exists`)
    await this.#locked(srcId, async () => {
      const src = this.#get(srcId)
      const layers = [...src.layers]
      if (!src.readOnly) {
        // freeze the source's leaf: from now on it is shared, so the source writes to a new one
        src.layers.push(await this.#newLayer())
        this.#diskChanged(srcId)
      }
      if (!readOnly) layers.push(await this.#newLayer())
      this.#disks.set(newId, { virtualSize: src.virtualSize, readOnly, layers })
      this.#diskChanged(newId)
      await this.#persist()
    })
    return this.#info(newId)
  }

  #get(id: DiskId): DiskState {
    const disk = this.#disks.get(id)
    if (disk === undefined) throw new LabDiskError('LAB_DISK_NOT_FOUND', `lab disk ${id} does not exist in the store`)
    return disk
  }

  #info(id: DiskId): DiskInfo {
    const cached = this.#infos.get(id)
    if (cached !== undefined) return cached
    const disk = this.#get(id)
    const leaf = disk.layers[disk.layers.length - 1] as string
    // frozen: the same object goes to every caller until the disk changes
    const info: DiskInfo = Object.freeze({
      id,
      virtualSize: disk.virtualSize,
      readOnly: disk.readOnly,
      layers: Object.freeze([...disk.layers]),
      physicalUtilisation: (this.#layers.get(leaf)?.size ?? 0) * BLOCK_SIZE,
    })
    this.#infos.set(id, info)
    return info
  }

  /** The newest layer of the chain that holds block `index`. */
  #holder(disk: DiskState, index: number): string | undefined {
    for (let i = disk.layers.length - 1; i >= 0; i--) {
      const layer = disk.layers[i] as string
      if (this.#layers.get(layer)?.has(index) === true) return layer
    }
    return undefined
  }

  #blocksOf(layers: Iterable<string>): number[] {
    const all = new Set<number>()
    for (const layer of layers) for (const index of this.#layers.get(layer) ?? []) all.add(index)
    return [...all].sort((a, b) => a - b)
  }

  async #newLayer(): Promise<string> {
    const id = randomUUID()
    await writeFile(this.#layerPath(id), '')
    this.#layers.set(id, new Set())
    return id
  }

  #layerPath(layer: string): string {
    return join(this.#dir, LAYER_DIR, `${layer}.img`)
  }

  #handle(layer: string): Promise<FileHandle> {
    let handle = this.#handles.get(layer)
    if (handle === undefined) {
      handle = open(this.#layerPath(layer), 'r+')
      this.#handles.set(layer, handle)
      // a failed open must not stay cached
      handle.catch(() => this.#handles.delete(layer))
    }
    return handle
  }

  #locked<T>(id: DiskId | typeof COLLECTION, work: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(id) ?? Promise.resolve()
    const result = previous.then(work, work)
    this.#locks.set(
      id,
      result.catch(() => undefined),
    )
    return result
  }

  #schedulePersist(): void {
    if (this.#persistTimer !== undefined) return
    this.#persistTimer = setTimeout(() => {
      this.#persistTimer = undefined
      // a failure here resurfaces on the next structural change, flush or close
      this.#persist().catch(() => undefined)
    }, 500)
    // never the reason a process stays alive
    this.#persistTimer.unref()
  }

  /**
   * Atomic rewrite of `store.json` (temp file + rename), one at a time. Callers that ask while
   * a rewrite runs share the next one, which starts after it and so holds all their changes:
   * under concurrent snapshots and clones the file is written once per batch, not once per call.
   */
  #persist(): Promise<void> {
    if (this.#nextPersist !== undefined) return this.#nextPersist
    const run = async (): Promise<void> => {
      this.#nextPersist = undefined
      const path = join(this.#dir, METADATA_FILE)
      const temp = `${path}.${process.pid}.tmp`
      await writeFile(temp, this.#stateJson())
      await rename(temp, path)
    }
    const next = this.#persisting.then(run, run)
    this.#nextPersist = next
    this.#persisting = next
    return next
  }

  /** `store.json`: a {@link PersistedState}, from the cached pieces of what did not change. */
  #stateJson(): string {
    const disks: string[] = []
    for (const [id, disk] of this.#disks) {
      let text = this.#diskJson.get(id)
      if (text === undefined) this.#diskJson.set(id, (text = `${JSON.stringify(id)}:${JSON.stringify(disk)}`))
      disks.push(text)
    }
    const layers: string[] = []
    for (const [id, blocks] of this.#layers) {
      let text = this.#layerJson.get(id)
      if (text === undefined) {
        text = `${JSON.stringify(id)}:${JSON.stringify([...blocks].sort((a, b) => a - b))}`
        this.#layerJson.set(id, text)
      }
      layers.push(text)
    }
    return `{"version":1,"disks":{${disks.join(',')}},"layers":{${layers.join(',')}}}`
  }

  #checkOpen(): void {
    if (this.#closed) throw new LabDiskError('LAB_STORE_CLOSED', `lab disk store ${this.#dir} is closed`)
  }
}

function checkSize(id: DiskId, virtualSize: number): void {
  if (!Number.isSafeInteger(virtualSize) || virtualSize < 0) {
    throw new LabDiskError('LAB_DISK_RANGE', `lab disk ${id}: invalid virtual size ${virtualSize}`)
  }
}

function checkRange(id: DiskId, disk: DiskState, offset: number, length: number): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > disk.virtualSize
  ) {
    throw new LabDiskError(
      'LAB_DISK_RANGE',
      `lab disk ${id}: range ${offset}+${length} is outside the disk (${disk.virtualSize} bytes)`,
    )
  }
}

async function readFully(handle: FileHandle, target: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < target.length) {
    const { bytesRead } = await handle.read(target, done, target.length - done, position + done)
    // past the end of a sparse file: the rest is a hole, which reads as zeros
    if (bytesRead === 0) {
      target.fill(0, done)
      return
    }
    done += bytesRead
  }
}

async function writeFully(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done)
    done += bytesWritten
  }
}
