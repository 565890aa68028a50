/**
 * Lab persistence: JSON files written atomically (temp file + rename), and a saver that keeps a
 * pool's database on disk as a snapshot plus a journal.
 *
 * `db.json` is a whole database (written through a temp file and a rename, so it is never half
 * a file) naming its journal, `db.json.<id>.journal`: one line per save, holding only the
 * records that changed (their JSON kept from the last save, so an unchanged record is never
 * serialised again) and the refs deleted since the save before. Shortly after changes the saver
 * appends a line; when the journal has grown as large as the snapshot (or on `flush()`, which
 * starting and stopping a lab call) it writes a new snapshot naming a new, empty journal and
 * removes the old one. A crash therefore leaves either the old snapshot and its journal or the
 * new snapshot (a journal it no longer names is ignored and removed later), and at worst a last
 * line cut short, which reading skips: what is lost is at most the last save delay's changes.
 */
import { randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open, readdir, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { LabSetupError } from './lab-error.js'
import type { Database, DatabaseDump } from './db/database.js'
import type { LabRecord } from './db/schema.js'

/** Writes JSON through a temp file and a rename, so readers never see half a file. */
export async function writeJsonAtomic(path: string, value: unknown, mode = 0o644): Promise<void> {
  await writeTextAtomic(path, JSON.stringify(value), mode)
}

async function writeTextAtomic(path: string, text: string, mode = 0o644): Promise<void> {
  const temp = `${path}.${randomUUID()}.tmp`
  try {
    await writeFile(temp, text, { mode })
    await rename(temp, path)
  } catch (error) {
    await rm(temp, { force: true })
    throw error
  }
}

/** The parsed file, undefined when it does not exist; a damaged file is `LAB_STATE_CORRUPT`. */
export async function readJsonIfExists<T>(path: string): Promise<T | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  try {
    return JSON.parse(text) as T
  } catch (error) {
    throw corrupt(path, error)
  }
}

function corrupt(path: string, cause: unknown): LabSetupError {
  return new LabSetupError(
    'LAB_STATE_CORRUPT',
    `lab state ${path} is not valid JSON; remove the lab directory to start afresh`,
    { file: path },
    { cause },
  )
}

/** `db.json` as the saver writes it: a dump naming the journal that continues it. */
interface StoredDump extends DatabaseDump {
  readonly journal?: string
}

/** One journal line: the generation saved, refs deleted and records (re)written, by class. */
interface JournalLine {
  readonly g: number
  readonly del?: Record<string, string[]>
  readonly put?: Record<string, Record<string, LabRecord>>
}

function journalPath(path: string, id: string): string {
  return `${path}.${id}.journal`
}

/**
 * The database a saver left at `path` (its snapshot with its journal replayed), undefined when
 * there is none; a damaged snapshot or journal line is `LAB_STATE_CORRUPT` (but a last journal
 * line cut short by a crash is skipped).
 */
export async function readDatabase(path: string): Promise<DatabaseDump | undefined> {
  const stored = await readJsonIfExists<StoredDump>(path)
  if (stored === undefined) return undefined
  if (typeof stored !== 'object' || stored === null || typeof stored.objects !== 'object' || stored.objects === null)
    throw corrupt(path, new Error('not a lab database'))
  const objects = stored.objects
  let generation = stored.generation
  if (stored.journal !== undefined) {
    const file = journalPath(path, stored.journal)
    for await (const line of readJournal(file)) {
      generation = Math.max(generation, line.g)
      for (const [cls, refs] of Object.entries(line.del ?? {}))
        for (const ref of refs) if (objects[cls] !== undefined) delete objects[cls][ref]
      for (const [cls, records] of Object.entries(line.put ?? {})) {
        const map = (objects[cls] ??= {})
        for (const [ref, record] of Object.entries(records)) map[ref] = record
      }
    }
  }
  return { generation, objects }
}

/** The lines of a journal (none when it does not exist), streamed; see `readDatabase`. */
async function* readJournal(file: string): AsyncGenerator<JournalLine> {
  const input = createReadStream(file, { encoding: 'utf8' })
  const lines = createInterface({ input, crlfDelay: Infinity })
  let damaged: unknown
  try {
    for await (const text of lines) {
      // a damaged line is the crash's cut-short last line only if nothing follows it
      if (damaged !== undefined) throw corrupt(file, damaged)
      if (text === '') continue
      let line: JournalLine
      try {
        line = JSON.parse(text) as JournalLine
      } catch (error) {
        damaged = error
        continue
      }
      if (typeof line !== 'object' || line === null || typeof line.g !== 'number') {
        damaged = new Error('not a journal line')
        continue
      }
      yield line
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  } finally {
    lines.close()
    input.destroy()
  }
}

/**
 * How long a burst of changes may go unsaved; a crash loses at most this much. A record changed
 * several times within it is written once (a VM's pass changes its record a dozen times).
 */
const SAVE_DELAY_MS = 500
/** A journal smaller than this is never compacted on its own (only by `flush()`). */
const COMPACT_MIN_BYTES = 1024 * 1024

export interface DatabaseSaverOptions {
  /** the save delay (default 500 ms) */
  readonly delayMs?: number
  /** the journal size below which it is not compacted before `flush()` (default 1 MiB) */
  readonly compactMinBytes?: number
}

/** The journal being appended to; `broken` once an append failed (the next save compacts). */
interface Journal {
  readonly id: string
  handle: Promise<FileHandle> | undefined
  bytes: number
  broken: boolean
}

/** Saves a pool database to `path` after changes (debounced) and on `flush()`; see the file comment. */
export class DatabaseSaver {
  readonly #db: Database
  readonly #path: string
  readonly #delayMs: number
  readonly #compactMinBytes: number
  #timer: NodeJS.Timeout | undefined
  #writing: Promise<void> = Promise.resolve()
  #failure: Error | undefined
  /** per class, per ref: `"ref":{record}` as last saved (what the files on disk hold once written) */
  readonly #saved = new Map<string, Map<string, string>>()
  /** the generation the last save captured; -1 before the first */
  #savedGeneration = -1
  /** undefined: the next save writes a snapshot */
  #journal: Journal | undefined
  #snapshotBytes = 0

  constructor(db: Database, path: string, options: DatabaseSaverOptions = {}) {
    this.#db = db
    this.#path = path
    this.#delayMs = options.delayMs ?? SAVE_DELAY_MS
    this.#compactMinBytes = options.compactMinBytes ?? COMPACT_MIN_BYTES
    db.onChange = () => this.#schedule()
  }

  /** Writes what changed since the last save now (a journal line, or a snapshot when due) and waits. */
  async save(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#enqueue(false)
    if (this.#failure !== undefined) throw this.#failure
  }

  /** Writes the whole database now (a snapshot, dropping the journal) and waits; rethrows the last background write failure, if any. */
  async flush(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#enqueue(true)
    if (this.#failure !== undefined) throw this.#failure
  }

  /** Stops saving (changes after this are not written) and closes the journal once pending writes are done. */
  stop(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#db.onChange = undefined
    const journal = this.#journal
    if (journal !== undefined) this.#writing = this.#writing.then(() => closeJournal(journal))
  }

  #schedule(): void {
    if (this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.#enqueue(false)
    }, this.#delayMs)
  }

  /** Captures the changes now (synchronously) and queues their write behind the previous one. */
  #enqueue(compact: boolean): Promise<void> {
    const line = this.#capture()
    const journal = this.#journal
    if (
      compact ||
      journal === undefined ||
      journal.broken ||
      journal.bytes >= Math.max(this.#compactMinBytes, this.#snapshotBytes)
    ) {
      const id = randomUUID()
      const snapshot = this.#snapshot(id)
      this.#snapshotBytes = Buffer.byteLength(snapshot)
      this.#journal = { id, handle: undefined, bytes: 0, broken: false }
      const next = this.#journal
      return this.#queue(async () => {
        try {
          try {
            await writeTextAtomic(this.#path, snapshot)
          } finally {
            // nothing more goes to the old journal, whether or not db.json names it still
            if (journal !== undefined) await closeJournal(journal)
          }
          await this.#removeStale(id)
        } catch (error) {
          // db.json may still name the old journal: nothing goes to the new one, the next save retries
          next.broken = true
          throw error
        }
      })
    }
    if (line === undefined) return this.#queue(() => Promise.resolve())
    journal.bytes += Buffer.byteLength(line)
    return this.#queue(async () => {
      // a line after a lost one would replay a wrong state: the next save writes a snapshot instead
      if (journal.broken) return
      try {
        journal.handle ??= open(journalPath(this.#path, journal.id), 'a')
        await (await journal.handle).appendFile(line)
      } catch (error) {
        journal.broken = true
        throw error
      }
    })
  }

  #queue(write: () => Promise<void>): Promise<void> {
    this.#writing = this.#writing.then(write).catch((error: unknown) => {
      // fs rejects with Errors; anything else is wrapped so flush() throws an Error
      this.#failure = error instanceof Error ? error : new Error(String(error))
    })
    return this.#writing
  }

  /**
   * Brings `#saved` up to the database and returns the journal line for what changed
   * (undefined when nothing did): records whose generation moved, refs that are gone.
   */
  #capture(): string | undefined {
    const generation = this.#db.generation
    if (this.#savedGeneration < 0) {
      for (const [cls, records] of Object.entries(this.#db.dump().objects)) {
        const saved = new Map<string, string>()
        for (const [ref, record] of Object.entries(records)) saved.set(ref, entry(ref, record))
        this.#saved.set(cls, saved)
      }
      this.#savedGeneration = generation
      return undefined
    }
    if (generation === this.#savedGeneration) return undefined
    const del = new Map<string, string[]>()
    const deleted = (cls: string, ref: string): void => {
      this.#saved.get(cls)?.delete(ref)
      let refs = del.get(cls)
      if (refs === undefined) del.set(cls, (refs = []))
      refs.push(JSON.stringify(ref))
    }
    const changes = this.#db.changesSince(this.#savedGeneration, () => true)
    // the database's deletion log is bounded: past it, every saved ref is checked
    const logged = this.#db.knowsDeletionsSince(this.#savedGeneration)
    if (!logged) {
      for (const [cls, saved] of this.#saved)
        for (const ref of [...saved.keys()]) if (this.#db.find(cls, ref) === undefined) deleted(cls, ref)
    }
    const put = new Map<string, string[]>()
    for (const change of changes) {
      if (change.operation === 'del') {
        if (
          logged &&
          this.#saved.get(change.cls)?.has(change.ref) === true &&
          this.#db.find(change.cls, change.ref) === undefined
        )
          deleted(change.cls, change.ref)
        continue
      }
      const record = this.#db.find(change.cls, change.ref)
      if (record === undefined) continue
      const text = entry(change.ref, record)
      let saved = this.#saved.get(change.cls)
      if (saved === undefined) this.#saved.set(change.cls, (saved = new Map<string, string>()))
      // a ref's owner touched for a relation only: its stored fields did not change
      if (saved.get(change.ref) === text) continue
      saved.set(change.ref, text)
      let entries = put.get(change.cls)
      if (entries === undefined) put.set(change.cls, (entries = []))
      entries.push(text)
    }
    this.#savedGeneration = generation
    const parts = [`{"g":${generation}`]
    if (del.size > 0) parts.push(`,"del":${group(del, refs => `[${refs.join(',')}]`)}`)
    if (put.size > 0) parts.push(`,"put":${group(put, entries => `{${entries.join(',')}}`)}`)
    parts.push('}\n')
    return parts.join('')
  }

  /** The whole database as last captured, naming journal `id`. */
  #snapshot(id: string): string {
    const parts = [`{"generation":${this.#savedGeneration},"journal":${JSON.stringify(id)},"objects":{`]
    let first = true
    for (const [cls, saved] of this.#saved) {
      parts.push(`${first ? '' : ','}${JSON.stringify(cls)}:{`, [...saved.values()].join(','), '}')
      first = false
    }
    parts.push('}}')
    return parts.join('')
  }

  /** Removes journals other than `current` and temp files a crash left beside `path`. */
  async #removeStale(current: string): Promise<void> {
    const prefix = `${basename(this.#path)}.`
    const keep = basename(journalPath(this.#path, current))
    for (const name of await readdir(dirname(this.#path))) {
      if (!name.startsWith(prefix) || name === keep) continue
      if (name.endsWith('.journal') || name.endsWith('.tmp')) await rm(join(dirname(this.#path), name), { force: true })
    }
  }
}

function entry(ref: string, record: Readonly<LabRecord>): string {
  return `${JSON.stringify(ref)}:${JSON.stringify(record)}`
}

function group(byClass: ReadonlyMap<string, string[]>, value: (items: string[]) => string): string {
  return `{${[...byClass].map(([cls, items]) => `${JSON.stringify(cls)}:${value(items)}`).join(',')}}`
}

async function closeJournal(journal: Journal): Promise<void> {
  const handle = journal.handle
  journal.handle = undefined
  if (handle === undefined) return
  try {
    await (await handle).close()
  } catch {
    // the open failed (reported then) or the handle is already closed: nothing to close
  }
}
