/**
 * The object database of one lab pool: records by class and ref, uuid lookup, the
 * automatically maintained set fields of reference §3.6, and the generation counter behind
 * `event.from` (add/mod/del per object since a token).
 */
import { randomUUID } from 'node:crypto'
import { xapiFault } from '../fault.js'
import { WireDateTime, WireFloat, type WireValue } from '../wire/values.js'
import { defaultFor, SCHEMA, type ClassSpec, type LabRecord, type StoredValue } from './schema.js'

/** The null reference every unset ref field holds. */
export const NULL_REF = 'OpaqueRef:NULL'

/** A fresh `OpaqueRef:<uuid>`. */
export function newRef(): string {
  return `OpaqueRef:${randomUUID()}`
}

interface ObjectMeta {
  created: number
  modified: number
}

interface Deletion {
  readonly cls: string
  readonly ref: string
  readonly uuid: string
  readonly created: number
  readonly deleted: number
}

/** One change as `event.from` reports it. */
export interface Change {
  readonly cls: string
  readonly ref: string
  readonly operation: 'add' | 'mod' | 'del'
  readonly generation: number
  /** for `del`: the uuid the object had (the legacy event API reports it) */
  readonly uuid?: string
}

/** What a pool's database looks like on disk (see persistence). */
export interface DatabaseDump {
  readonly generation: number
  readonly objects: Record<string, Record<string, LabRecord>>
}

/** An index of a computed set: refs of one class by the ref their field `via` holds. */
interface Relation {
  readonly via: string
  readonly index: Map<string, Set<string>>
}

/** One pool's objects; see the file comment. */
export class Database {
  #generation = 0
  readonly #objects = new Map<string, Map<string, LabRecord>>()
  readonly #classOf = new Map<string, string>()
  readonly #meta = new Map<string, ObjectMeta>()
  readonly #uuids = new Map<string, Map<string, string>>()
  /** `${fromClass}.${viaField}` → target ref → refs of fromClass pointing at it */
  readonly #relations = new Map<string, Map<string, Set<string>>>()
  /** per class, the relations its fields feed */
  readonly #relationsFrom = new Map<string, Relation[]>()
  /**
   * Every `modified` stamp given out, in order, as [ref, generation]; an entry is current while
   * the object's `modified` still equals it. `changesSince` reads only the tail after its token
   * instead of every object (event.from runs for every task a client waits on); stale entries
   * are dropped once they outnumber the objects.
   */
  #modifications: [string, number][] = []
  #deletions: Deletion[] = []
  /** deletions at or below this generation may have been dropped from `#deletions` */
  #deletionsCutAt = 0
  #waiters = new Set<() => void>()
  #onChange: (() => void) | undefined
  readonly #derived = new Map<
    string,
    (ref: string, record: Readonly<LabRecord>) => Readonly<Record<string, StoredValue>>
  >()

  constructor() {
    for (const spec of SCHEMA.values()) {
      this.#objects.set(spec.name, new Map())
      this.#uuids.set(spec.name, new Map())
      for (const field of spec.fields) {
        if (field.type.kind !== 'rel') continue
        const key = `${field.type.from}.${field.type.via}`
        if (this.#relations.has(key)) continue
        const index = new Map<string, Set<string>>()
        this.#relations.set(key, index)
        let from = this.#relationsFrom.get(field.type.from)
        if (from === undefined) this.#relationsFrom.set(field.type.from, (from = []))
        from.push({ via: field.type.via, index })
      }
    }
  }

  get generation(): number {
    return this.#generation
  }

  /** Called after every change (persistence schedules a save). */
  set onChange(listener: (() => void) | undefined) {
    this.#onChange = listener
  }

  /**
   * Fields computed from the rest of the object when it is read (e.g. `allowed_operations`,
   * which XAPI keeps in step with power state and blocked operations).
   */
  derive(
    cls: string,
    compute: (ref: string, record: Readonly<LabRecord>) => Readonly<Record<string, StoredValue>>,
  ): void {
    this.#derived.set(cls, compute)
  }

  spec(cls: string): ClassSpec {
    const spec = SCHEMA.get(cls)
    if (spec === undefined) throw new Error(`lab database: unknown class ${cls}`)
    return spec
  }

  classOf(ref: string): string | undefined {
    return this.#classOf.get(ref)
  }

  /** Creates an object; fields not given take their defaults, `uuid` is generated unless given. */
  create(cls: string, fields: Readonly<Record<string, StoredValue>>, ref = newRef()): string {
    const spec = this.spec(cls)
    const record: LabRecord = {}
    for (const field of spec.fields) {
      if (field.type.kind === 'rel') continue
      record[field.name] = fields[field.name] ?? spec.defaults[field.name] ?? defaultFor(field.type)
    }
    if (fields['uuid'] === undefined) record['uuid'] = randomUUID()
    const generation = this.#bump()
    this.#objects.get(cls)!.set(ref, record)
    this.#classOf.set(ref, cls)
    this.#meta.set(ref, { created: generation, modified: generation })
    this.#logModified(ref, generation)
    this.#uuids.get(cls)!.set(record['uuid'] as string, ref)
    this.#link(cls, ref, record, undefined)
    this.#changed()
    return ref
  }

  find(cls: string, ref: string): Readonly<LabRecord> | undefined {
    return this.#objects.get(cls)?.get(ref)
  }

  /** The record, or `HANDLE_INVALID [cls, ref]`. */
  get(cls: string, ref: string): Readonly<LabRecord> {
    const record = this.find(cls, ref)
    if (record === undefined) throw xapiFault('HANDLE_INVALID', cls, ref)
    return record
  }

  all(cls: string): IterableIterator<[string, Readonly<LabRecord>]> {
    return this.#objects.get(cls)!.entries()
  }

  count(cls: string): number {
    return this.#objects.get(cls)!.size
  }

  /** The ref with this uuid, or `UUID_INVALID [cls, uuid]`. */
  byUuid(cls: string, uuid: string): string {
    const ref = this.#uuids.get(cls)?.get(uuid)
    if (ref === undefined) throw xapiFault('UUID_INVALID', cls, uuid)
    return ref
  }

  findByUuid(cls: string, uuid: string): string | undefined {
    return this.#uuids.get(cls)?.get(uuid)
  }

  /** Changes stored fields (a `mod` event; related set owners get one too when a ref moves). */
  update(cls: string, ref: string, patch: Readonly<Record<string, StoredValue>>): void {
    const record = this.#objects.get(cls)?.get(ref)
    if (record === undefined) throw xapiFault('HANDLE_INVALID', cls, ref)
    const spec = this.spec(cls)
    const relations = this.#relationsFrom.get(cls)
    // only the fields that feed a computed set need their old value
    const before: LabRecord = {}
    if (relations !== undefined) for (const { via } of relations) before[via] = record[via]!
    for (const name of Object.keys(patch)) {
      const field = spec.byName.get(name)
      if (field === undefined || field.type.kind === 'rel')
        throw new Error(`lab database: ${cls}.${name} is not a stored field`)
      record[name] = patch[name]!
    }
    this.#link(cls, ref, record, before)
    this.#setModified(ref, this.#meta.get(ref)!)
    this.#changed()
  }

  /** Marks the object modified without changing it (`event.inject`). */
  touch(ref: string): void {
    const meta = this.#meta.get(ref)
    if (meta === undefined) return
    this.#setModified(ref, meta)
    this.#changed()
  }

  destroy(cls: string, ref: string): void {
    const objects = this.#objects.get(cls)
    const record = objects?.get(ref)
    if (objects === undefined || record === undefined) throw xapiFault('HANDLE_INVALID', cls, ref)
    objects.delete(ref)
    this.#classOf.delete(ref)
    this.#uuids.get(cls)!.delete(record['uuid'] as string)
    const meta = this.#meta.get(ref)!
    this.#meta.delete(ref)
    this.#unlink(cls, ref, record)
    this.#deletions.push({ cls, ref, uuid: record['uuid'] as string, created: meta.created, deleted: this.#bump() })
    this.#changed()
  }

  /**
   * The refs of `cls` objects for which one of `keys` holds (`field` is `_ref`, `uuid` or a ref
   * field some computed set is indexed by), in the order {@link all} lists them; undefined when
   * a key's field has no index (the caller then scans the class).
   */
  lookup(cls: string, keys: readonly { readonly field: string; readonly value: string }[]): string[] | undefined {
    const objects = this.#objects.get(cls)
    if (objects === undefined) return undefined
    const found = new Set<string>()
    for (const { field, value } of keys) {
      if (field === '_ref') {
        if (objects.has(value)) found.add(value)
      } else if (field === 'uuid') {
        const ref = this.#uuids.get(cls)?.get(value)
        if (ref !== undefined) found.add(ref)
      } else {
        const index = this.#relations.get(`${cls}.${field}`)
        if (index === undefined) return undefined
        for (const ref of index.get(value) ?? []) found.add(ref)
      }
    }
    // objects are listed in creation order, which their `created` generations follow
    return [...found].sort((a, b) => this.#meta.get(a)!.created - this.#meta.get(b)!.created)
  }

  /** Refs of `fromClass` objects whose `via` field points at `target`. */
  related(fromClass: string, via: string, target: string): string[] {
    return [...(this.#relations.get(`${fromClass}.${via}`)?.get(target) ?? [])]
  }

  /** The record as it goes on the wire, computed set fields included. */
  toWire(cls: string, ref: string): { readonly [key: string]: WireValue } {
    const stored = this.get(cls, ref)
    const derived = this.#derived.get(cls)?.(ref, stored)
    const out: { [key: string]: WireValue } = {}
    for (const field of this.spec(cls).fields) {
      const value =
        derived !== undefined && Object.hasOwn(derived, field.name) ? derived[field.name] : stored[field.name]
      switch (field.type.kind) {
        case 'rel':
          out[field.name] = this.related(field.type.from, field.type.via, ref)
          break
        case 'f':
          out[field.name] = new WireFloat(value as number)
          break
        case 'd':
          out[field.name] = new WireDateTime(value as string)
          break
        default:
          out[field.name] = value as WireValue
      }
    }
    return out
  }

  /** Per object, the one change since `since` (`-1`: every live object as `add`). */
  changesSince(since: number, accept: (cls: string, ref: string) => boolean): Change[] {
    const changes: Change[] = []
    const change = (ref: string, meta: ObjectMeta): void => {
      const cls = this.#classOf.get(ref)!
      if (accept(cls, ref))
        changes.push({ cls, ref, operation: meta.created > since ? 'add' : 'mod', generation: meta.modified })
    }
    if (since < 0) {
      for (const [ref, meta] of this.#meta) change(ref, meta)
      return changes.sort((a, b) => a.generation - b.generation)
    }
    const log = this.#modifications
    for (let i = firstAfter(log, since, entry => entry[1]); i < log.length; i++) {
      const [ref, generation] = log[i]!
      const meta = this.#meta.get(ref)
      if (meta !== undefined && meta.modified === generation) change(ref, meta)
    }
    const deletions = this.#deletions
    const live = changes.length
    for (let i = firstAfter(deletions, since, d => d.deleted); i < deletions.length; i++) {
      const deletion = deletions[i]!
      if (deletion.created <= since && accept(deletion.cls, deletion.ref)) {
        changes.push({
          cls: deletion.cls,
          ref: deletion.ref,
          operation: 'del',
          generation: deletion.deleted,
          uuid: deletion.uuid,
        })
      }
    }
    // both runs are in generation order already
    return live === 0 || live === changes.length ? changes : changes.sort((a, b) => a.generation - b.generation)
  }

  /**
   * Whether {@link changesSince} still reports every deletion after `since` (the deletion log
   * is bounded; older tokens miss some).
   */
  knowsDeletionsSince(since: number): boolean {
    return since >= this.#deletionsCutAt
  }

  /** Resolves on the next change, after `timeoutMs`, or when `signal` aborts. */
  waitForChange(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise(resolve => {
      const done = (): void => {
        clearTimeout(timer)
        this.#waiters.delete(done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, timeoutMs)
      this.#waiters.add(done)
      signal?.addEventListener('abort', done, { once: true })
    })
  }

  dump(): DatabaseDump {
    const objects: Record<string, Record<string, LabRecord>> = {}
    for (const [cls, map] of this.#objects) objects[cls] = Object.fromEntries(map)
    return { generation: this.#generation, objects }
  }

  /** Loads a dump into an empty database; every object counts as created at the dump's generation. */
  restore(dump: DatabaseDump): void {
    for (const [cls, map] of Object.entries(dump.objects)) {
      if (!SCHEMA.has(cls)) continue
      for (const [ref, record] of Object.entries(map)) this.create(cls, record, ref)
    }
    this.#generation = Math.max(this.#generation, dump.generation)
  }

  #bump(): number {
    return ++this.#generation
  }

  #changed(): void {
    // Keep the deletion log bounded; a client whose token is older than what we keep simply
    // misses those `del` events (XAPI has the same window, then answers EVENTS_LOST on legacy calls).
    if (this.#deletions.length > 10_000) {
      this.#deletionsCutAt = this.#deletions[this.#deletions.length - 5_001]!.deleted
      this.#deletions = this.#deletions.slice(-5_000)
    }
    for (const waiter of [...this.#waiters]) waiter()
    this.#onChange?.()
  }

  #link(cls: string, ref: string, record: LabRecord, before: LabRecord | undefined): void {
    for (const { via, index } of this.#relationsFrom.get(cls) ?? []) {
      const now = record[via] as string
      const was = before?.[via] as string | undefined
      if (now === was) continue
      if (was !== undefined) this.#removeFromIndex(index, was, ref)
      let set = index.get(now)
      if (set === undefined) index.set(now, (set = new Set()))
      set.add(ref)
      if (was !== undefined) this.#touchQuietly(was)
      this.#touchQuietly(now)
    }
  }

  #unlink(cls: string, ref: string, record: LabRecord): void {
    for (const { via, index } of this.#relationsFrom.get(cls) ?? []) {
      const target = record[via] as string
      this.#removeFromIndex(index, target, ref)
      this.#touchQuietly(target)
    }
  }

  #removeFromIndex(index: Map<string, Set<string>>, target: string, ref: string): void {
    const set = index.get(target)
    set?.delete(ref)
    if (set?.size === 0) index.delete(target)
  }

  /** The owner of a computed set changed: a `mod` event on it, if it exists. */
  #touchQuietly(ref: string): void {
    const meta = this.#meta.get(ref)
    if (meta !== undefined) this.#setModified(ref, meta)
  }

  #setModified(ref: string, meta: ObjectMeta): void {
    meta.modified = this.#bump()
    this.#logModified(ref, meta.modified)
  }

  #logModified(ref: string, generation: number): void {
    this.#modifications.push([ref, generation])
    if (this.#modifications.length > 2 * this.#meta.size + 1_000) {
      this.#modifications = this.#modifications.filter(([r, g]) => this.#meta.get(r)?.modified === g)
    }
  }
}

/** The index of the first item whose key is above `since` (items ascend by key), or `items.length`. */
function firstAfter<T>(items: readonly T[], since: number, key: (item: T) => number): number {
  let low = 0
  let high = items.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if (key(items[mid]!) > since) high = mid
    else low = mid + 1
  }
  return low
}
