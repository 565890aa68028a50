/**
 * The lab control API, outside the XAPI namespace: write guest data into a VM's disks (so a
 * test can make a VM change between passes), read it back, inject and clear faults, find VMs,
 * take a pool's site down and bring it back, say what a VM's guest does and write its xenstore
 * keys, and read what the hosts have served. Available as a library ({@link LabControl}) and
 * over HTTP under `/lab/` on every host (`control-route.ts`).
 */
import { LabSetupError } from './lab-error.js'
import { validateFault, type LabFault } from './faults.js'
import { GUEST_KEY } from './guest/guest-agent.js'
import type { LabPool } from './pool.js'
import { validateGuest, type LabGuestSpec } from './spec.js'
import { guestBlock } from './storage/guest-data.js'
import { BLOCK_SIZE } from './storage/types.js'
import type { LabTransferStats } from './transfer-stats.js'

/** Byte ranges to write, or whole 2 MiB blocks of deterministic data (`seed`) or zeros. */
export type GuestWrites =
  | readonly { readonly offset: number; readonly data: Buffer }[]
  | { readonly blocks: readonly number[]; readonly seed: number; readonly zero?: boolean }

/** A VM as the control API reports it. */
export interface LabVmInfo {
  readonly ref: string
  readonly uuid: string
  readonly nameLabel: string
  readonly powerState: string
  /** the VM's disks in userdevice order */
  readonly vdis: readonly { readonly ref: string; readonly uuid: string; readonly virtualSize: number }[]
}

/** A pool's hosts as one site that can be lost and come back (a {@link PoolSite}). */
export interface PoolPower {
  readonly isUp: boolean
  down(options?: { readonly haltVms?: boolean }): Promise<void>
  up(): Promise<void>
}

/** The lab control API: guest data, faults, lookups, sites, guests and counters for tests and demos. */
export interface LabControl {
  /** Writes into a VDI (by uuid or ref) or a VM's first disk (by VM uuid or ref). */
  writeGuestData(pool: string, vdiOrVm: string, writes: GuestWrites): Promise<void>
  /** Reads what the guest sees. */
  readGuestData(pool: string, vdiOrVm: string, offset: number, length: number): Promise<Buffer>
  injectFault(pool: string, fault: LabFault): void
  clearFaults(pool?: string): void
  listFaults(pool: string): LabFault[]
  /** API calls the pool answered, per method (without `Async.`), since the start or the last reset. */
  callCounts(pool: string): Record<string, number>
  resetCallCounts(pool?: string): void
  /** The first non-control-domain, non-snapshot VM with that name_label. */
  findVm(pool: string, nameLabel: string): LabVmInfo | undefined
  /**
   * Every host of the pool stops answering, like a lost site: listening sockets and open
   * connections close (clients get connection refused); the state stays, in memory and on disk.
   * `haltVms`: a power cut rather than a network cut, its running VMs are Halted when it returns.
   */
  poolDown(pool: string, options?: { readonly haltVms?: boolean }): Promise<void>
  /** The hosts listen again on the same addresses and ports; like a restarted host, every session is gone. */
  poolUp(pool: string): Promise<void>
  isPoolUp(pool: string): boolean
  /** Every pool, and whether its hosts answer. */
  listPools(): { readonly name: string; readonly up: boolean }[]
  /**
   * What the VM's guest does from now on (`null`: the lab-wide default); stored on the VM, so
   * its snapshots, clones, copies and replicas inherit it.
   */
  setGuest(pool: string, vm: string, guest: LabGuestSpec | null): void
  /** Writes keys into a running VM's `xenstore_data`, as its guest would (`vm-data/…`). */
  writeXenstore(pool: string, vm: string, entries: Readonly<Record<string, string>>): void
  /** What the pool's hosts have served over NBD and HTTP exports since the start or the last reset. */
  transferStats(pool: string): LabTransferStats
  resetTransferStats(pool?: string): void
  /** The pool holding a VM (by uuid or ref), to let callers name a VM alone. */
  poolOfVm(vm: string): string | undefined
}

function unknown(what: string): never {
  throw new LabSetupError('LAB_OBJECT_UNKNOWN', what)
}

function vmInfo(pool: LabPool, ref: string): LabVmInfo {
  const vm = pool.db.get('VM', ref)
  const vdis = pool.db
    .related('VBD', 'VM', ref)
    .map(vbd => pool.db.get('VBD', vbd))
    .filter(vbd => vbd['type'] === 'Disk' && !pool.isNull(vbd['VDI']))
    .sort((a, b) => Number(a['userdevice']) - Number(b['userdevice']))
    .map(vbd => {
      const vdi = pool.db.get('VDI', vbd['VDI'] as string)
      return { ref: vbd['VDI'] as string, uuid: vdi['uuid'] as string, virtualSize: vdi['virtual_size'] as number }
    })
  return {
    ref,
    uuid: vm['uuid'] as string,
    nameLabel: vm['name_label'] as string,
    powerState: vm['power_state'] as string,
    vdis,
  }
}

/** The control API over the running pools and their sites, by pool name. */
export function createControl(
  pools: ReadonlyMap<string, LabPool>,
  sites: ReadonlyMap<string, PoolPower> = new Map(),
): LabControl {
  const poolNamed = (name: string): LabPool =>
    pools.get(name) ?? unknown(`lab pool ${name} does not exist; pools: ${[...pools.keys()].join(', ')}`)
  const siteNamed = (name: string): PoolPower =>
    sites.get(name) ?? unknown(`lab pool ${name} does not exist; pools: ${[...pools.keys()].join(', ')}`)
  const vmNamed = (pool: LabPool, id: string): string => {
    const ref = pool.db.find('VM', id) !== undefined ? id : pool.db.findByUuid('VM', id)
    if (ref === undefined || pool.db.get('VM', ref)['is_control_domain'] === true)
      unknown(`no VM ${id} in lab pool ${pool.name}`)
    return ref
  }
  const diskOf = (pool: LabPool, id: string): { ref: string; diskId: string } => {
    const vdi = pool.vdiView(id)
    if (vdi !== undefined) return { ref: vdi.ref, diskId: vdi.diskId }
    const vmRef = pool.db.find('VM', id) !== undefined ? id : pool.db.findByUuid('VM', id)
    if (vmRef === undefined) unknown(`no VDI or VM ${id} in lab pool ${pool.name}`)
    const first = vmInfo(pool, vmRef).vdis[0] ?? unknown(`VM ${id} in lab pool ${pool.name} has no disk`)
    return { ref: first.ref, diskId: pool.vdiView(first.ref)!.diskId }
  }
  return {
    async writeGuestData(poolName, vdiOrVm, writes) {
      const pool = poolNamed(poolName)
      const { ref, diskId } = diskOf(pool, vdiOrVm)
      if (Array.isArray(writes)) {
        for (const write of writes as readonly { offset: number; data: Buffer }[])
          await pool.storage.write(diskId, write.offset, write.data)
      } else {
        const { blocks, seed, zero } = writes as { blocks: readonly number[]; seed: number; zero?: boolean }
        const size = pool.storage.info(diskId)?.virtualSize ?? 0
        for (const index of blocks) {
          const offset = index * BLOCK_SIZE
          if (offset >= size) unknown(`block ${index} is beyond the end of disk ${diskId}`)
          const data = zero === true ? Buffer.alloc(BLOCK_SIZE) : guestBlock(seed, index)
          await pool.storage.write(diskId, offset, data.subarray(0, Math.min(BLOCK_SIZE, size - offset)))
        }
      }
      pool.refreshVdi(ref)
    },
    async readGuestData(poolName, vdiOrVm, offset, length) {
      const pool = poolNamed(poolName)
      return pool.storage.read(diskOf(pool, vdiOrVm).diskId, offset, length)
    },
    injectFault(poolName, fault) {
      poolNamed(poolName).faults.add(validateFault(fault))
    },
    clearFaults(poolName) {
      if (poolName === undefined) for (const pool of pools.values()) pool.faults.clear()
      else poolNamed(poolName).faults.clear()
    },
    listFaults: poolName => poolNamed(poolName).faults.list(),
    callCounts: poolName => poolNamed(poolName).faults.callCounts(),
    resetCallCounts(poolName) {
      if (poolName === undefined) for (const pool of pools.values()) pool.faults.resetCallCounts()
      else poolNamed(poolName).faults.resetCallCounts()
    },
    findVm(poolName, nameLabel) {
      const pool = poolNamed(poolName)
      for (const [ref, vm] of pool.db.all('VM')) {
        if (vm['name_label'] === nameLabel && vm['is_control_domain'] !== true && vm['is_a_snapshot'] !== true)
          return vmInfo(pool, ref)
      }
      return undefined
    },
    poolDown: (poolName, options) => siteNamed(poolName).down(options),
    poolUp: poolName => siteNamed(poolName).up(),
    isPoolUp: poolName => siteNamed(poolName).isUp,
    listPools: () => [...pools.keys()].map(name => ({ name, up: sites.get(name)?.isUp ?? true })),
    setGuest(poolName, vm, guest) {
      const pool = poolNamed(poolName)
      const ref = vmNamed(pool, vm)
      const otherConfig = { ...(pool.db.get('VM', ref)['other_config'] as Readonly<Record<string, string>>) }
      if (guest === null) delete otherConfig[GUEST_KEY]
      else otherConfig[GUEST_KEY] = JSON.stringify(validateGuest(guest, `guest of VM ${vm}`))
      pool.db.update('VM', ref, { other_config: otherConfig })
    },
    writeXenstore(poolName, vm, entries) {
      const pool = poolNamed(poolName)
      const ref = vmNamed(pool, vm)
      const state = pool.db.get('VM', ref)['power_state'] as string
      // only a running guest writes; the lab has no running VM of that name to write with
      if (state !== 'Running') unknown(`VM ${vm} of lab pool ${pool.name} is ${state}, not Running: no guest writes`)
      pool.guests.writeXenstore(ref, entries)
    },
    transferStats: poolName => poolNamed(poolName).stats.snapshot(),
    resetTransferStats(poolName) {
      if (poolName === undefined) for (const pool of pools.values()) pool.stats.reset()
      else poolNamed(poolName).stats.reset()
    },
    poolOfVm(vm) {
      for (const [name, pool] of pools) {
        const ref = pool.db.find('VM', vm) !== undefined ? vm : pool.db.findByUuid('VM', vm)
        if (ref !== undefined) return name
      }
      return undefined
    },
  }
}
