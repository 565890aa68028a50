/**
 * Lab persistence: JSON files written atomically (temp file + rename), and a saver that writes
 * a pool's database shortly after it changes and once more on stop, one write at a time.
 */
import { randomUUID } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { LabSetupError } from './lab-error.js'
import type { Database, DatabaseDump } from './db/database.js'

/** Writes JSON through a temp file and a rename, so readers never see half a file. */
export async function writeJsonAtomic(path: string, value: unknown, mode = 0o644): Promise<void> {
  const temp = `${path}.${randomUUID()}.tmp`
  await writeFile(temp, JSON.stringify(value), { mode })
  await rename(temp, path)
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
    throw new LabSetupError(
      'LAB_STATE_CORRUPT',
      `lab state ${path} is not valid JSON; remove the lab directory to start afresh`,
      { file: path },
      { cause: error },
    )
  }
}

/** How long a burst of changes may go unsaved; a crash loses at most this much. */
const SAVE_DELAY_MS = 100

/** Saves a pool database to `path` after changes (debounced) and on `flush()`. */
export class DatabaseSaver {
  readonly #db: Database
  readonly #path: string
  #timer: NodeJS.Timeout | undefined
  #writing: Promise<void> = Promise.resolve()
  #failure: Error | undefined

  constructor(db: Database, path: string) {
    this.#db = db
    this.#path = path
    db.onChange = () => this.#schedule()
  }

  /** Writes now and waits; rethrows the last background write failure, if any. */
  async flush(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#enqueue()
    if (this.#failure !== undefined) throw this.#failure
  }

  stop(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#db.onChange = undefined
  }

  #schedule(): void {
    if (this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.#enqueue()
    }, SAVE_DELAY_MS)
  }

  #enqueue(): Promise<void> {
    const dump: DatabaseDump = this.#db.dump()
    this.#writing = this.#writing.then(() =>
      writeJsonAtomic(this.#path, dump).catch((error: unknown) => {
        // fs rejects with Errors; anything else is wrapped so flush() throws an Error
        this.#failure = error instanceof Error ? error : new Error(String(error))
      }),
    )
    return this.#writing
  }
}
