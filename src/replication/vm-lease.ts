/**
 * Per-VM leases kept in XAPI, so that any number of controllers (separate machines, separate job
 * stores) can run the same job: a pass replicates a VM only while it holds the job's lease on the
 * source VM's `other_config`.
 *
 * XAPI's only atomic primitive on a map is `add_to_other_config`, which refuses an existing key
 * with `MAP_DUPLICATE_KEY` (create-if-absent); there is no compare-and-swap and
 * `remove_from_other_config` removes whatever is there. A single key rewritten on takeover
 * ("remove if it still holds what I read, then add") lets two controllers that both read the
 * same expired value both win: A removes and adds its own, B — whose check ran before A's
 * removal — removes A's fresh lease and adds its own. So the lease is a *sequence* of keys,
 * `xen-cr:lease:<job id>:<n>`, and the entry with the highest `n` is the lease:
 * - taking it (free, expired or released) adds `n + 1`; of several contenders only one can add
 *   a given key, and the others get `MAP_DUPLICATE_KEY` and read the winner's live lease;
 * - after adding, the winner reads back: if a higher entry exists (a contender that read an
 *   older state won further up), it removes its own entry and has lost;
 * - renewing is taking over one's own lease: add `n + 1` with a new expiry, then remove `n`, so
 *   a controller that took an expired lease over in between makes the renewal fail (lost);
 * - nobody ever removes an entry above their own, and only entries below the winner's are
 *   cleared;
 * - releasing adds a released entry above (a tombstone) rather than removing the key, so the
 *   sequence never restarts at 0 under a contender that read an older state; the tombstone
 *   also carries when the VM was last replicated, so a controller that takes the lease just
 *   after another finished skips the VM rather than replicating it twice in one round.
 *
 * Expiry is wall-clock time (ISO 8601, UTC) of the controller that wrote it: controllers sharing
 * jobs need synchronised clocks (NTP), with a skew far below the lease time.
 *
 * A live lease whose holder is provably dead is taken over at once, through the same claim as an
 * expired one: same host name, same process table (kernel boot id and pid namespace, recorded by
 * the holder), another run, and no process with its pid. A pid reused since only delays the
 * takeover to the expiry; a lease without the process table (another OS, an older version) waits
 * for its expiry.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync, readlinkSync } from 'node:fs'
import { hostname } from 'node:os'
import { isXapiError } from '../errors.js'
import type { XapiClient } from '../xapi/client.js'
import type { Ref } from '../xapi/types.js'
import { leaseKeyPrefix } from './metadata.js'

/** Who holds a lease: the controller's host name, its process and this run of it. */
export interface LeaseOwner {
  readonly host: string
  readonly pid: number
  readonly run: string
  /**
   * The process table `pid` is in: `<kernel boot id>/<pid namespace>` (Linux); absent where unknown.
   * Two containers can share a host name (host networking) and the kernel, not a pid namespace.
   */
  readonly pids?: string
}

/** The last completed replication of a VM by the job, carried from lease to lease. */
export interface LastReplication {
  readonly schedule: string
  /** when that VM's pass started (its snapshot is later), ISO 8601 */
  readonly at: string
  readonly host: string
  readonly run: string
}

/** The value of one lease entry (JSON in `other_config`). */
export interface LeaseRecord extends LeaseOwner {
  /** ISO 8601; the lease is free after it */
  readonly expires: string
  /** a tombstone: the holder released the lease */
  readonly released?: true
  readonly last?: LastReplication
  /**
   * the holder's passes of the VM left nothing behind (each succeeded, no call failed meanwhile,
   * no warning): on a tombstone, the next pass need not look for leftovers beyond its records
   */
  readonly tidy?: true
}

/** Lease time and renewal period. */
export interface LeaseTiming {
  /** how long a lease holds without renewal (default 120 s) */
  readonly ttlMs: number
  /** how often the holder renews (default a quarter of `ttlMs`) */
  readonly renewMs: number
}

export const DEFAULT_LEASE_TTL_MS = 120_000

export function leaseTiming(ttlMs: number = DEFAULT_LEASE_TTL_MS): LeaseTiming {
  return { ttlMs, renewMs: Math.max(50, Math.floor(ttlMs / 4)) }
}

let processTable: { readonly id: string | undefined } | undefined

/** This process's {@link LeaseOwner.pids}, read once; undefined off Linux or without /proc. */
export function currentProcessTable(): string | undefined {
  if (processTable === undefined) {
    let id: string | undefined
    try {
      const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
      const namespace = readlinkSync('/proc/self/ns/pid')
      id = boot === '' || namespace === '' ? undefined : `${boot}/${namespace}`
    } catch {
      id = undefined
    }
    processTable = { id }
  }
  return processTable.id
}

/** This process as a lease owner, with a new run id. */
export function currentOwner(): LeaseOwner {
  const pids = currentProcessTable()
  return { host: hostname(), pid: process.pid, run: randomUUID(), ...(pids === undefined ? {} : { pids }) }
}

/**
 * Whether the holder of `record` is provably dead: a process of this very host and process table
 * (see {@link LeaseOwner.pids}), not `self`'s run, whose pid no process has. A live pid, even
 * one reused by another program, or any doubt, says no.
 */
export function holderGone(record: LeaseRecord, self: LeaseOwner): boolean {
  if (record.host !== self.host || record.run === self.run) return false
  const pids = currentProcessTable()
  if (pids === undefined || record.pids !== pids) return false
  // 0 and negative pids name process groups, not a process
  if (!Number.isSafeInteger(record.pid) || record.pid <= 0 || record.pid === process.pid) return false
  try {
    process.kill(record.pid, 0)
    return false
  } catch (error) {
    // EPERM: it exists, under another user
    return (error as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

interface Entry {
  readonly n: number
  readonly key: string
  /** undefined: not a lease value we can read (hand-edited): treated as free */
  readonly record: LeaseRecord | undefined
}

function parseRecord(raw: string): LeaseRecord | undefined {
  try {
    const value: unknown = JSON.parse(raw)
    if (typeof value !== 'object' || value === null) return undefined
    const v = value as Record<string, unknown>
    if (typeof v['host'] !== 'string' || typeof v['pid'] !== 'number' || typeof v['run'] !== 'string') return undefined
    if (typeof v['expires'] !== 'string' || Number.isNaN(Date.parse(v['expires']))) return undefined
    if (v['pids'] !== undefined && typeof v['pids'] !== 'string') return undefined
    return value as LeaseRecord
  } catch {
    return undefined
  }
}

/** The job's lease entries on a VM's `other_config`, lowest first. */
export function leaseEntries(otherConfig: Readonly<Record<string, string>>, jobId: string): Entry[] {
  const prefix = leaseKeyPrefix(jobId)
  const entries: Entry[] = []
  for (const [key, raw] of Object.entries(otherConfig)) {
    if (!key.startsWith(prefix)) continue
    const suffix = key.slice(prefix.length)
    if (!/^\d{1,15}$/.test(suffix)) continue
    entries.push({ n: Number(suffix), key, record: parseRecord(raw) })
  }
  return entries.sort((a, b) => a.n - b.n)
}

/** Whether `record` holds the lease at `nowMs`. */
export function isLive(record: LeaseRecord | undefined, nowMs: number): boolean {
  return record !== undefined && record.released !== true && Date.parse(record.expires) > nowMs
}

/** The lease entry in force: the highest one. */
function topOf(entries: readonly Entry[]): Entry | undefined {
  return entries[entries.length - 1]
}

export interface LeaseContext {
  readonly client: XapiClient
  readonly vmRef: Ref<'VM'>
  readonly jobId: string
  readonly owner: LeaseOwner
  readonly timing: LeaseTiming
  /** wall clock in ms (default `Date.now`) */
  readonly clock?: () => number
  readonly signal?: AbortSignal
}

export type AcquireOutcome =
  | {
      readonly acquired: true
      readonly lease: VmLease
      /** the entry taken over (a tombstone, an expired lease), undefined when the VM had none */
      readonly previous: LeaseRecord | undefined
      /** why `previous`, a lease nobody released, was taken over */
      readonly takeover?: 'expired' | 'holder gone'
    }
  | { readonly acquired: false; readonly holder: LeaseRecord }

/** How many times a contended take is retried before reporting the VM as held. */
const MAX_ATTEMPTS = 8

/** Reads the job's lease entries on the VM. */
async function readEntries(c: LeaseContext): Promise<Entry[]> {
  const opts = c.signal === undefined ? {} : { signal: c.signal }
  const oc = await c.client.call<Record<string, string>>('VM.get_other_config', [c.vmRef], opts)
  return leaseEntries(oc, c.jobId)
}

/** `add_to_other_config`: true when added, false when the key exists (someone else won it). */
async function addEntry(c: LeaseContext, n: number, record: LeaseRecord): Promise<boolean> {
  const opts = c.signal === undefined ? {} : { signal: c.signal }
  try {
    await c.client.call(
      'VM.add_to_other_config',
      [c.vmRef, `${leaseKeyPrefix(c.jobId)}${n}`, JSON.stringify(record)],
      opts,
    )
    return true
  } catch (error) {
    if (isXapiError(error, 'MAP_DUPLICATE_KEY')) return false
    throw error
  }
}

async function removeKey(c: LeaseContext, key: string): Promise<void> {
  const opts = c.signal === undefined ? {} : { signal: c.signal }
  await c.client.call('VM.remove_from_other_config', [c.vmRef, key], opts)
}

/**
 * Adds entry `n` and checks that it is the highest; removes it again when it is not.
 * Returns the entries read back when this caller now holds the lease at `n`, else undefined.
 */
async function claim(
  c: LeaseContext,
  n: number,
  record: LeaseRecord,
  onUnknown: 'give back' | 'keep',
): Promise<Entry[] | undefined> {
  const added = await addEntry(c, n, record)
  let after: Entry[]
  try {
    after = await readEntries(c)
  } catch (error) {
    // Our entry is in, but whether it is the lease is unknown: a take gives it back (a tombstone
    // above it, or only its removal when another run is above) rather than leave it live and
    // block the VM until it expires. A renewal keeps it: its previous entry still holds the lease.
    if (added && onUnknown === 'give back') await new VmLease(c, n, record).release().catch(() => undefined)
    throw error
  }
  // A call retried after a lost reply finds its own first attempt's key: that is a win.
  const mine = after.find(e => e.n === n)?.record
  if (!added && (mine?.run !== record.run || mine.expires !== record.expires)) return undefined
  const top = topOf(after)
  if (top?.n !== n) {
    await removeKey(c, `${leaseKeyPrefix(c.jobId)}${n}`)
    return undefined
  }
  return after
}

/** Removes entries below `n`: superseded leases and tombstones nobody can hold any more. */
async function clearBelow(c: LeaseContext, n: number, entries: readonly Entry[]): Promise<void> {
  for (const e of entries) if (e.n < n) await removeKey(c, e.key)
}

/**
 * Takes the job's lease on the VM, or says who holds it. Never waits for a holder: a VM leased
 * elsewhere is that controller's work.
 *
 * `known`: the VM's `other_config` as read a moment ago (the pass's records). When it shows the
 * lease free, the first attempt claims the next entry without reading the map first: the read
 * back after adding decides as it always does (a stale view either meets the key it wants
 * taken, or finds a higher entry and gives its own up), and an entry's value never changes
 * once added, so the view's top is what was taken over. A view showing the lease held is
 * read again.
 */
export async function acquireVmLease(
  c: LeaseContext,
  known?: Readonly<Record<string, string>>,
): Promise<AcquireOutcome> {
  const clock = c.clock ?? Date.now
  const held = (record: LeaseRecord | undefined): boolean =>
    record !== undefined && isLive(record, clock()) && !holderGone(record, c.owner)
  let view = known === undefined ? undefined : leaseEntries(known, c.jobId)
  if (view !== undefined && held(topOf(view)?.record)) view = undefined
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const entries = view ?? (await readEntries(c))
    view = undefined
    const top = topOf(entries)
    // held, even by this very run (asked twice): a second take would race its own renewals
    if (top?.record !== undefined && held(top.record)) return { acquired: false, holder: top.record }
    const n = top === undefined ? 0 : top.n + 1
    const last: LastReplication | undefined = top?.record?.last
    // tidiness is carried only from a tombstone: a lease taken over was left by a run that died
    const tidy = top?.record?.released === true && top.record.tidy === true
    const record: LeaseRecord = {
      ...c.owner,
      expires: new Date(clock() + c.timing.ttlMs).toISOString(),
      ...(last === undefined ? {} : { last }),
      ...(tidy ? { tidy } : {}),
    }
    const after = await claim(c, n, record, 'give back')
    if (after !== undefined) {
      const lease = new VmLease(c, n, record)
      try {
        await clearBelow(c, n, after)
      } catch (error) {
        // the lease is ours but the take failed: give it back (a tombstone above it) rather than
        // leave it live, blocking the VM for every run until it expires
        await lease.release().catch(() => undefined)
        throw error
      }
      const previous = top?.record
      if (previous === undefined || previous.released === true) return { acquired: true, lease, previous }
      const takeover = isLive(previous, clock()) ? 'holder gone' : 'expired'
      return { acquired: true, lease, previous, takeover }
    }
  }
  // contended past every attempt: whoever is on top now holds it
  const top = topOf(await readEntries(c))
  return { acquired: false, holder: top?.record ?? { ...c.owner, expires: new Date(clock()).toISOString() } }
}

/** A lease this run holds. Renew and release are serialised; after a loss both do nothing. */
export class VmLease {
  #n: number
  #record: LeaseRecord
  #lost = false
  #released = false
  #queue: Promise<unknown> = Promise.resolve()

  constructor(
    readonly context: LeaseContext,
    n: number,
    record: LeaseRecord,
  ) {
    this.#n = n
    this.#record = record
  }

  /** when the lease runs out unless renewed, ms since the epoch */
  get expiresAt(): number {
    return Date.parse(this.#record.expires)
  }

  get lost(): boolean {
    return this.#lost
  }

  get record(): LeaseRecord {
    return this.#record
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn)
    this.#queue = next.catch(() => undefined)
    return next
  }

  /**
   * Extends the lease by its time. Resolves false when it was lost (another controller took it
   * over after it expired); rejects on a call failure, the lease still being held as far as we
   * know (the caller retries until it expires).
   */
  renew(): Promise<boolean> {
    return this.#serial(async () => {
      if (this.#lost || this.#released) return !this.#lost
      const c = this.context
      const clock = c.clock ?? Date.now
      if (!(await this.#holds(await readEntries(c)))) return this.#lose()
      const record: LeaseRecord = { ...this.#record, expires: new Date(clock() + c.timing.ttlMs).toISOString() }
      if ((await claim(c, this.#n + 1, record, 'keep')) === undefined) return this.#lose()
      // the new entry is the lease from here on, even if removing the old one fails (the next
      // take clears entries below the top): a later renewal or release must start from it
      const superseded = `${leaseKeyPrefix(c.jobId)}${this.#n}`
      this.#n += 1
      this.#record = record
      await removeKey(c, superseded)
      return true
    })
  }

  /**
   * Whether `entries` show this lease on top. An entry of this run above ours is a renewal whose
   * read back failed (or whose reply was lost) after its entry went in: nobody else writes our
   * run id, so it is the lease from here on, and the entry it superseded is removed.
   */
  async #holds(entries: readonly Entry[]): Promise<boolean> {
    const top = topOf(entries)
    const record = top?.record
    if (top === undefined || record === undefined || record.run !== this.context.owner.run) return false
    if (record.released === true || top.n < this.#n) return false
    if (top.n === this.#n) return true
    const superseded = `${leaseKeyPrefix(this.context.jobId)}${this.#n}`
    this.#n = top.n
    this.#record = record
    const { signal: _aborted, ...c } = this.context
    await removeKey(c, superseded)
    return true
  }

  #lose(): boolean {
    this.#lost = true
    return false
  }

  /** Marks the lease lost without asking XAPI (it expired while renewals failed). */
  markLost(): void {
    this.#lost = true
  }

  /**
   * Gives the lease up, leaving a tombstone that records `last` (or the last replication carried
   * so far) and whether the VM was left tidy (`tidy`; by default what was carried: a holder that
   * did no work changed nothing). A lease already lost is left alone: the entries above ours are
   * someone else's.
   */
  release(last?: LastReplication, tidy?: boolean): Promise<void> {
    return this.#serial(async () => {
      if (this.#released) return
      this.#released = true
      // not under the run's signal: a pass stopped by SIGINT/SIGTERM still gives its leases back
      const { signal: _aborted, ...c } = this.context
      const clock = c.clock ?? Date.now
      if (this.#lost) return
      const carried = last ?? this.#record.last
      const clean = tidy ?? this.#record.tidy === true
      const tombstone: LeaseRecord = {
        ...c.owner,
        expires: new Date(clock()).toISOString(),
        released: true,
        ...(carried === undefined ? {} : { last: carried }),
        ...(clean ? { tidy: true as const } : {}),
      }
      // No read first. A run that took the lease over added n + 1, so the tombstone is refused
      // (MAP_DUPLICATE_KEY); one that has renewed past it since leaves the tombstone below its
      // own live entry, where it means nothing and the next take clears it. Either way our
      // entry is superseded or released, and is ours to remove. Refused by n + 1 of our own (a
      // renewal that failed after its entry went in), the tombstone goes above that one.
      if (!(await addEntry(c, this.#n + 1, tombstone))) {
        const entries = await readEntries(c)
        const top = topOf(entries)
        if (top !== undefined && top.n > this.#n && (await this.#holds(entries)))
          await addEntry(c, this.#n + 1, tombstone)
      }
      await removeKey(c, `${leaseKeyPrefix(c.jobId)}${this.#n}`)
    })
  }
}

/** "host/pid until HH:MM:SSZ": who holds a lease, for a skipped VM's status line. */
export function describeHolder(record: LeaseRecord): string {
  return `${record.host}/${record.pid} until ${record.expires}`
}

/**
 * Renews a pass's leases every `renewMs` while it works. A lease found taken over — or expired
 * while its renewals kept failing — calls its `onLost` (the pass stops that VM).
 */
export class LeaseKeeper {
  readonly #leases = new Map<VmLease, () => void>()
  readonly #timing: LeaseTiming
  readonly #clock: () => number
  #timer: NodeJS.Timeout | undefined
  #ticking: Promise<void> | undefined

  constructor(timing: LeaseTiming, clock: () => number = Date.now) {
    this.#timing = timing
    this.#clock = clock
  }

  add(lease: VmLease, onLost: () => void): void {
    this.#leases.set(lease, onLost)
    // the pass's own calls keep the process alive; a lone renewal timer must not
    this.#timer ??= setInterval(() => {
      this.#ticking ??= this.#tick().finally(() => (this.#ticking = undefined))
    }, this.#timing.renewMs).unref()
  }

  async #tick(): Promise<void> {
    await Promise.all(
      [...this.#leases].map(async ([lease, onLost]) => {
        let held: boolean
        try {
          held = await lease.renew()
        } catch {
          // a failed call is not a loss until the lease runs out: the next tick tries again
          held = this.#clock() < lease.expiresAt
          if (!held) lease.markLost()
        }
        if (!held) {
          this.#leases.delete(lease)
          onLost()
        }
      }),
    )
  }

  /** Stops renewing and releases every lease still held; what could not be released expires on its own. */
  async releaseAll(
    outcomeOf: (lease: VmLease) => { readonly last?: LastReplication; readonly tidy?: boolean },
  ): Promise<unknown[]> {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    await this.#ticking
    const leases = [...this.#leases.keys()]
    this.#leases.clear()
    const settled = await Promise.allSettled(
      leases.map(lease => {
        const { last, tidy } = outcomeOf(lease)
        return lease.release(last, tidy)
      }),
    )
    return settled.flatMap((s): unknown[] => (s.status === 'rejected' ? [s.reason as unknown] : []))
  }
}
