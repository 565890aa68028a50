/**
 * One simulated pool: its object database, disk storage, tasks, sessions, users, faults, the
 * guests of its VMs, its hosts' TLS identities and what they have served. Every host of the
 * pool serves this same state; only the master answers the API.
 */
import { setMaxListeners } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { BLOCK_SIZE, type DiskStore } from './storage/types.js'
import type { LabVdiView } from './views.js'
import { NULL_REF, type Database } from './db/database.js'
import { xapiFault } from './fault.js'
import { FaultTable } from './faults.js'
import { GuestAgent } from './guest/guest-agent.js'
import type { HostCertificate } from './nbd/certificate.js'
import type { LabGuestSpec } from './spec.js'
import { TransferCounters } from './transfer-stats.js'
import { TaskManager } from './tasks.js'
import { syncBaseCopies } from './rpc/base-copies.js'
import { vmAllowedOperations } from './rpc/vm-checks.js'
import { formatXapiDate } from './wire/values.js'

/** A user a pool accepts at login. */
export interface LabUser {
  readonly user: string
  readonly password: string
}

/** One pool's state; see the file comment. */
export class LabPool {
  readonly name: string
  readonly db: Database
  readonly storage: DiskStore
  readonly tasks: TaskManager
  readonly faults = new FaultTable()
  readonly guests: GuestAgent
  readonly stats = new TransferCounters()
  /** each host's key and certificate (`host.get_server_certificate`, NBD over TLS), by host ref */
  readonly certificates = new Map<string, HostCertificate>()
  /** the port every host's NBD server listens on (XAPI's 10809), once they listen */
  nbdPort: number | undefined
  readonly #closing = new AbortController()
  /** Legacy event.register / event.next state per session (not persisted, as XAPI's is not). */
  readonly eventRegistrations = new Map<string, { classes: Set<string>; since: number }>()
  readonly #users: ReadonlyMap<string, string>
  readonly #loginDelayMs: number

  constructor(options: {
    name: string
    db: Database
    storage: DiskStore
    users: readonly LabUser[]
    loginDelayMs: number
    /** what a VM's guest does when the VM has no setting of its own */
    guest?: LabGuestSpec
  }) {
    // Every call waiting in the pool (a long poll, an injected latency) listens to this signal:
    // a dozen at once is normal load, not a leak (no MaxListenersExceededWarning on the lab's stderr).
    setMaxListeners(0, this.#closing.signal)
    this.name = options.name
    this.db = options.db
    this.storage = options.storage
    this.#users = new Map(options.users.map(u => [u.user, u.password]))
    this.#loginDelayMs = options.loginDelayMs
    this.tasks = new TaskManager(this.db, () => this.masterRef)
    this.guests = new GuestAgent(this.db, options.guest)
    this.db.derive('VM', ref => ({ allowed_operations: vmAllowedOperations(this, ref) }))
    this.db.derive('VDI', ref => ({ allowed_operations: this.#vdiAllowedOperations(ref) }))
  }

  /** What a VHD SR allows on a VDI: destroy and offline resize only when no VBD is attached. */
  #vdiAllowedOperations(vdiRef: string): string[] {
    // xapi_vdi.check_operation_error: an unmanaged VDI (a base copy) allows nothing but forget
    if (this.db.get('VDI', vdiRef)['managed'] === false) return ['forget']
    const attached = this.db
      .related('VBD', 'VDI', vdiRef)
      .some(vbd => this.db.get('VBD', vbd)['currently_attached'] === true)
    const common = [
      'clone',
      'copy',
      'snapshot',
      'update',
      'forget',
      'generate_config',
      'mirror',
      'enable_cbt',
      'disable_cbt',
    ]
    return attached ? [...common, 'resize_online'] : [...common, 'resize', 'destroy', 'data_destroy', 'set_on_boot']
  }

  /** Aborted when the lab stops: long polls (event.from) return at once. */
  get closing(): AbortSignal {
    return this.#closing.signal
  }

  close(): void {
    this.#closing.abort()
    this.guests.close()
  }

  /**
   * What a host restart does to the pool's volatile state (XAPI keeps sessions in memory only):
   * every session is gone, pending tasks fail, legacy event registrations are forgotten.
   */
  forgetSessions(): void {
    for (const [ref] of [...this.db.all('session')]) this.db.destroy('session', ref)
    this.eventRegistrations.clear()
    this.tasks.failOrphans()
  }

  get users(): LabUser[] {
    return [...this.#users].map(([user, password]) => ({ user, password }))
  }

  get poolRef(): string {
    const first = this.db.all('pool').next()
    if (first.done === true) throw new Error(`lab pool ${this.name} has no pool object`)
    return first.value[0]
  }

  get masterRef(): string {
    return this.db.get('pool', this.poolRef)['master'] as string
  }

  hostAddress(hostRef: string): string {
    return this.db.get('host', hostRef)['address'] as string
  }

  /** `session.login_with_password`: wrong credentials fail after the configured delay, as XAPI's 5 s. */
  async login(user: string, password: string, originator: string, hostRef: string): Promise<string> {
    if (this.#users.get(user) !== password) {
      // The stopping lab must not wait out a pending delay.
      if (this.#loginDelayMs > 0)
        await sleep(this.#loginDelayMs, undefined, { signal: this.closing }).catch(() => undefined)
      throw xapiFault('SESSION_AUTHENTICATION_FAILED', user, 'Authentication failure')
    }
    return this.db.create('session', {
      this_host: hostRef,
      last_active: formatXapiDate(new Date()),
      validation_time: formatXapiDate(new Date()),
      pool: false,
      is_local_superuser: user === 'root',
      auth_user_name: user,
      originator,
    })
  }

  /** A temporary session for HTTP Basic auth on the data paths; undefined on bad credentials. */
  basicSession(user: string, password: string, hostRef: string): string | undefined {
    if (this.#users.get(user) !== password) return undefined
    return this.db.create('session', {
      this_host: hostRef,
      auth_user_name: user,
      last_active: formatXapiDate(new Date()),
    })
  }

  isSession(ref: string): boolean {
    return this.db.find('session', ref) !== undefined
  }

  /** `SESSION_INVALID [ref]` unless `ref` is a live session. */
  checkSession(ref: string): void {
    if (!this.isSession(ref)) throw xapiFault('SESSION_INVALID', ref)
  }

  logout(ref: string): void {
    if (this.isSession(ref)) this.db.destroy('session', ref)
  }

  /** A VDI by ref or uuid, as the disk handlers see it. */
  vdiView(refOrUuid: string): LabVdiView | undefined {
    const ref = this.db.find('VDI', refOrUuid) !== undefined ? refOrUuid : this.db.findByUuid('VDI', refOrUuid)
    if (ref === undefined) return undefined
    const record = this.db.get('VDI', ref)
    return {
      ref,
      uuid: record['uuid'] as string,
      diskId: record['location'] as string,
      srRef: record['SR'] as string,
      virtualSize: record['virtual_size'] as number,
    }
  }

  /** After the disks behind `vdiRefs` changed: physical_utilisation, sm_config and SR totals follow. */
  refreshVdi(...vdiRefs: string[]): void {
    const srs = new Set<string>()
    for (const vdiRef of vdiRefs) {
      const record = this.db.find('VDI', vdiRef)
      if (record === undefined) continue
      const info = this.storage.info(record['location'] as string)
      if (info === undefined) continue
      // vhd-parent is set with the SR's base copies (refreshSr), which it names
      const smConfig: Record<string, string> = {
        ...(record['sm_config'] as Readonly<Record<string, string>>),
        vdi_type: 'vhd',
      }
      this.db.update('VDI', vdiRef, {
        physical_utilisation: info.physicalUtilisation,
        virtual_size: info.virtualSize,
        sm_config: smConfig,
      })
      srs.add(record['SR'] as string)
    }
    // once per SR, however many of its disks changed
    for (const sr of srs) this.refreshSr(sr)
  }

  refreshSr(srRef: string): void {
    if (this.db.find('SR', srRef) === undefined) return
    syncBaseCopies(this, srRef)
    let virtual = 0
    const layers = new Set<string>()
    for (const vdiRef of this.db.related('VDI', 'SR', srRef)) {
      const vdi = this.db.get('VDI', vdiRef)
      // a base copy's size is its children's, counted with them
      if (vdi['managed'] !== false) virtual += vdi['virtual_size'] as number
      const info = this.storage.info(vdi['location'] as string)
      if (info === undefined) continue
      for (const layer of info.layers) layers.add(layer)
      // a coalesce (storage/sparse-disk-store.ts) can give a snapshot a fuller leaf
      if (vdi['physical_utilisation'] !== info.physicalUtilisation)
        this.db.update('VDI', vdiRef, { physical_utilisation: info.physicalUtilisation })
    }
    this.db.update('SR', srRef, { physical_utilisation: this.#layerBytes(layers), virtual_allocation: virtual })
  }

  /**
   * Bytes the SR's disks hold now, every layer once: a VDI's `physical_utilisation` is only its
   * leaf, but the layers a snapshot or clone froze under it stay on the SR (a VHD SR keeps the
   * parent files), shared by all the disks above them. Read from the store, not the records,
   * so that a check in the middle of a transfer counts what it has written so far.
   */
  srUsedBytes(srRef: string): number {
    const layers = new Set<string>()
    for (const vdiRef of this.db.related('VDI', 'SR', srRef)) {
      const info = this.storage.info(this.db.get('VDI', vdiRef)['location'] as string)
      for (const layer of info?.layers ?? []) layers.add(layer)
    }
    return this.#layerBytes(layers)
  }

  #layerBytes(layers: Iterable<string>): number {
    let used = 0
    for (const layer of layers) used += this.storage.layerBytes(layer)
    return used
  }

  /**
   * `SR_FULL [requested, maximum]` when `bytes` more would take the SR's physical utilisation
   * past its physical size, as XAPI refuses a copy or an import that does not fit. Thin
   * provisioning: only allocated bytes count, never virtual sizes.
   */
  checkSrSpace(srRef: string, bytes: number): void {
    if (bytes <= 0) return
    const size = this.db.get('SR', srRef)['physical_size'] as number
    const requested = this.srUsedBytes(srRef) + bytes
    if (requested > size) throw xapiFault('SR_FULL', String(requested), String(size))
  }

  /** {@link checkSrSpace} for a write of `length` bytes at `offset` into the disk `diskId`. */
  checkDiskWrite(diskId: string, offset: number, length: number): void {
    const vdiRef = this.db.findByUuid('VDI', diskId)
    if (vdiRef === undefined) return
    this.checkSrSpace(
      this.db.get('VDI', vdiRef)['SR'] as string,
      this.storage.newBlocks(diskId, offset, length) * BLOCK_SIZE,
    )
  }

  /** Whether some host of the pool has a plugged PBD for the SR. */
  srHasPbd(srRef: string): boolean {
    return this.db.related('PBD', 'SR', srRef).some(pbd => this.db.get('PBD', pbd)['currently_attached'] === true)
  }

  /** A host that can reach the SR: the master when it can, else the first host with a plugged PBD. */
  hostForSr(srRef: string): string | undefined {
    const hosts = this.db
      .related('PBD', 'SR', srRef)
      .map(pbd => this.db.get('PBD', pbd))
      .filter(pbd => pbd['currently_attached'] === true)
      .map(pbd => pbd['host'] as string)
    if (hosts.includes(this.masterRef)) return this.masterRef
    return hosts[0]
  }

  isNull(ref: unknown): boolean {
    return ref === NULL_REF || ref === '' || ref === undefined
  }
}
