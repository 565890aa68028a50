/**
 * The pool's disk store as the HTTP import handlers see it: every write first asks whether the
 * blocks it adds still fit on the disk's SR, so an import that outgrows the SR fails with
 * `SR_FULL` (in its task) where a real host runs out of space, instead of growing past it.
 */
import type { DiskId, DiskStore } from './types.js'

export function spaceCheckedStore(
  store: DiskStore,
  checkWrite: (id: DiskId, offset: number, length: number) => void,
): DiskStore {
  return {
    create: (id, virtualSize) => store.create(id, virtualSize),
    snapshot: (srcId, newId) => store.snapshot(srcId, newId),
    clone: (srcId, newId) => store.clone(srcId, newId),
    destroy: id => store.destroy(id),
    resize: (id, virtualSize) => store.resize(id, virtualSize),
    info: id => store.info(id),
    allocatedBlocks: id => store.allocatedBlocks(id),
    changedBlocks: (id, baseId) => store.changedBlocks(id, baseId),
    layerBytes: layer => store.layerBytes(layer),
    newBlocks: (id, offset, length) => store.newBlocks(id, offset, length),
    readBlock: (id, index) => store.readBlock(id, index),
    read: (id, offset, length) => store.read(id, offset, length),
    write: async (id, offset, data) => {
      checkWrite(id, offset, data.length)
      await store.write(id, offset, data)
    },
    fill: (id, spec) => store.fill(id, spec),
    flush: () => store.flush(),
    close: () => store.close(),
  }
}
