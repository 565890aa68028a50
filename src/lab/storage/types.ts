/**
 * Contract between the lab's object database (VDI records, VM.snapshot, …) and its disk
 * storage. A disk is identified by a {@link DiskId} (the lab uses the VDI's uuid, which it also
 * puts in `VDI.location`).
 *
 * A disk is a chain of layers, oldest first. A layer is a sparse file plus the set of 2 MiB
 * blocks it holds. Only the leaf of a writable disk is ever written; snapshot and clone freeze
 * the current leaf and put new leaves on top (copy-on-write, as VHD SRs do). Layers are shared
 * between disks and deleted when the last disk that uses them is destroyed; a layer that a
 * destroy leaves with a single child layer above it is coalesced with it, as SM's garbage
 * collector coalesces a VHD into its parent (never into a writable disk's leaf).
 */

import { VHD_BLOCK_SIZE } from '../../vhd/layout.js'

/** Block size of the lab's layers and of VHD exports: 2 MiB (the VHD block size). */
export const BLOCK_SIZE = VHD_BLOCK_SIZE

export type DiskId = string

export interface DiskInfo {
  readonly id: DiskId
  readonly virtualSize: number
  /** Snapshots are read-only: writes throw. */
  readonly readOnly: boolean
  /** Layer ids, oldest first; the last one is the leaf. */
  readonly layers: readonly string[]
  /** Bytes held by the leaf layer (number of its blocks × BLOCK_SIZE): `VDI.physical_utilisation`. */
  readonly physicalUtilisation: number
}

/** How the lab fills a new disk with deterministic guest data. */
export interface FillSpec {
  /** how many bytes, from offset 0 (rounded up to whole blocks) */
  readonly bytes: number
  /** seed of the deterministic pseudo-random content */
  readonly seed: number
}

export interface DiskStore {
  /** A new writable disk of one empty layer; reads as zeros. */
  create(id: DiskId, virtualSize: number): Promise<DiskInfo>
  /**
   * `newId` becomes a read-only disk with the content `srcId` has now. If `srcId` is writable,
   * its leaf is frozen and it gets a new empty leaf on top.
   */
  snapshot(srcId: DiskId, newId: DiskId): Promise<DiskInfo>
  /** `newId` becomes a writable disk with the content `srcId` has now (its own new leaf). */
  clone(srcId: DiskId, newId: DiskId): Promise<DiskInfo>
  /** Forget the disk; layers no other disk uses are deleted from disk. */
  destroy(id: DiskId): Promise<void>
  /** Grow (never shrink) the virtual size. */
  resize(id: DiskId, virtualSize: number): Promise<DiskInfo>
  info(id: DiskId): DiskInfo | undefined
  /** Indexes of blocks allocated anywhere in the disk's chain, ascending. */
  allocatedBlocks(id: DiskId): number[]
  /**
   * Indexes of blocks allocated in the layers that are in one chain but not the other
   * (symmetric difference), ascending: what a VHD export with `base` contains.
   */
  changedBlocks(id: DiskId, baseId: DiskId): number[]
  /** Bytes held by the layer `layer` (one of some disk's {@link DiskInfo.layers}); 0 for an unknown one. */
  layerBytes(layer: string): number
  /**
   * How many blocks writing `length` bytes at `offset` would add to the disk's leaf (those it
   * does not hold yet): the space the write takes on its SR.
   */
  newBlocks(id: DiskId, offset: number, length: number): number
  /** One whole block as the guest sees it (BLOCK_SIZE bytes, zeros past the virtual size). */
  readBlock(id: DiskId, index: number): Promise<Buffer>
  /** Bytes as the guest sees them; `offset + length` must not exceed the virtual size. */
  read(id: DiskId, offset: number, length: number): Promise<Buffer>
  /** Write guest data into the leaf, copying partially written blocks up from the chain first. */
  write(id: DiskId, offset: number, data: Buffer): Promise<void>
  /** Deterministic pseudo-random guest data (lab spec `filled`). */
  fill(id: DiskId, spec: FillSpec): Promise<void>
  /** Persist metadata so that a store opened on the same directory finds every disk again. */
  flush(): Promise<void>
  close(): Promise<void>
}
