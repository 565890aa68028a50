import { randomUUID } from 'node:crypto'
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { ConfigError, UsageError, ValidationError, isXenCrError } from '../errors.js'
import { withFileLock, type FileLockOptions } from './file-lock.js'
import { JOBS_DOCUMENT_VERSION, parseJobsDocument, type JobsDocument } from './job-document.js'
import type { Job } from './types.js'

/**
 * The job store: one JSON file (`{ "version": 1, "jobs": [...] }`). Every change is a
 * read-modify-write under `<file>.lock`, written to a temporary file in the same folder, fsynced,
 * then renamed over the store, so a reader sees the old document or the new one, never half of
 * either, and two concurrent `job create` runs cannot lose each other's job.
 */
export class JobStore {
  /** The constructor does no I/O; the file and its folder are created on the first change. */
  constructor(
    readonly file: string,
    private readonly lockOptions: FileLockOptions = {},
  ) {}

  /** Every job, in creation order; an absent file is an empty store. */
  async list(): Promise<readonly Job[]> {
    return (await this.read()).jobs
  }

  /** The job whose id or name is `handle`, or undefined. */
  async find(handle: string): Promise<Job | undefined> {
    return findJob(await this.list(), handle)
  }

  /** @throws UsageError `JOB_NOT_FOUND` */
  async get(handle: string): Promise<Job> {
    const job = await this.find(handle)
    if (job === undefined) throw this.notFound(handle)
    return job
  }

  /** @throws ValidationError `JOB_EXISTS` when the id or name is taken (nothing is written) */
  async add(job: Job): Promise<void> {
    await this.change(jobs => {
      const clash = jobs.find(other => [other.id, other.name].some(handle => handle === job.id || handle === job.name))
      if (clash !== undefined) {
        throw new ValidationError(
          'JOB_EXISTS',
          `job ${clash.id} ("${clash.name}") already uses the id or name of the new job; choose another --name or --id`,
        )
      }
      return [...jobs, job]
    })
  }

  /** Replaces the job `handle` with `change(job)`; the id cannot change. @throws UsageError `JOB_NOT_FOUND` */
  async update(handle: string, change: (job: Job) => Job): Promise<Job> {
    let updated: Job | undefined
    await this.change(jobs => {
      const current = findJob(jobs, handle)
      if (current === undefined) throw this.notFound(handle)
      updated = { ...change(current), id: current.id }
      return jobs.map(job => (job.id === current.id ? (updated ?? job) : job))
    })
    if (updated === undefined) throw this.notFound(handle)
    return updated
  }

  /**
   * Replaces the job `expected` (as read earlier) with `next`, under the lock, if nobody changed it
   * meanwhile and no other job has `next`'s name: an edit checked against the pools outside the
   * lock never overwrites another edit made during the check. Nothing is written on refusal.
   * @throws ValidationError `JOB_CHANGED`, `JOB_EXISTS`; UsageError `JOB_NOT_FOUND`
   */
  async replace(expected: Job, next: Job): Promise<void> {
    await this.change(jobs => {
      const current = jobs.find(job => job.id === expected.id)
      if (current === undefined) throw this.notFound(expected.id)
      if (JSON.stringify(current) !== JSON.stringify(expected)) {
        throw new ValidationError(
          'JOB_CHANGED',
          `job "${expected.name}" was changed by another process while it was being checked; nothing saved; run the edit again`,
        )
      }
      const clash = jobs.find(job => job.id !== expected.id && (job.name === next.name || job.id === next.name))
      if (clash !== undefined) {
        throw new ValidationError(
          'JOB_EXISTS',
          `job ${clash.id} ("${clash.name}") already uses the name "${next.name}"; choose another --name`,
        )
      }
      return jobs.map(job => (job.id === expected.id ? { ...next, id: expected.id } : job))
    })
  }

  /** @throws UsageError `JOB_NOT_FOUND` */
  async remove(handle: string): Promise<Job> {
    let removed: Job | undefined
    await this.change(jobs => {
      removed = findJob(jobs, handle)
      if (removed === undefined) throw this.notFound(handle)
      return jobs.filter(job => job !== removed)
    })
    if (removed === undefined) throw this.notFound(handle)
    return removed
  }

  private unwritable(error: unknown): ConfigError {
    const code = error instanceof Error && 'code' in error ? String(error.code) : 'error'
    return new ConfigError(
      'JOBS_FILE_UNWRITABLE',
      `job store ${this.file} cannot be written (${code}); check the path and its permissions`,
      { file: this.file },
      { cause: error },
    )
  }

  private notFound(handle: string): UsageError {
    return new UsageError('JOB_NOT_FOUND', `no job with id or name "${handle}" in ${this.file}; see xen-cr job list`)
  }

  private async read(): Promise<JobsDocument> {
    let text: string
    try {
      text = await readFile(this.file, 'utf8')
    } catch (error) {
      if (error instanceof Error && 'code' in error && error.code === 'ENOENT')
        return { version: JOBS_DOCUMENT_VERSION, jobs: [] }
      const isDirectory = error instanceof Error && 'code' in error && error.code === 'EISDIR'
      throw new ConfigError(
        'JOBS_FILE_UNREADABLE',
        isDirectory
          ? `job store ${this.file} is a directory; give the path of the file in it, e.g. ${join(this.file, 'jobs.json')}`
          : `job store ${this.file} cannot be read; check its permissions`,
        { file: this.file },
        { cause: error },
      )
    }
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      throw new ConfigError(
        'JOBS_FILE_INVALID',
        `${this.file}: not valid JSON (${reason}); fix or restore the job store`,
        { file: this.file },
        { cause: error },
      )
    }
    return parseJobsDocument(raw, this.file)
  }

  private async change(edit: (jobs: readonly Job[]) => readonly Job[]): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 }).catch((error: unknown) => {
      throw this.unwritable(error)
    })
    await withFileLock(
      `${this.file}.lock`,
      async () => {
        const document = await this.read()
        await this.write({ version: JOBS_DOCUMENT_VERSION, jobs: edit(document.jobs) })
      },
      this.lockOptions,
    ).catch((error: unknown) => {
      // The lock file, the temporary file and the rename all need a writable folder: a read-only
      // one (or a full disk) fails there with a bare errno, which is the store's problem, not a bug.
      throw isXenCrError(error) || !(error instanceof Error && 'syscall' in error) ? error : this.unwritable(error)
    })
  }

  private async write(document: JobsDocument): Promise<void> {
    const temp = join(dirname(this.file), `.${basename(this.file)}.${randomUUID()}.tmp`)
    const handle = await open(temp, 'wx', 0o644).catch((error: unknown) => {
      throw this.unwritable(error)
    })
    try {
      await handle.writeFile(`${JSON.stringify(document, null, 2)}\n`)
      // the data must be on disk before the rename makes it the store, or a crash could leave an empty file
      await handle.sync()
    } catch (error) {
      await handle.close()
      await unlink(temp).catch(() => undefined)
      throw error
    }
    await handle.close()
    try {
      await rename(temp, this.file)
    } catch (error) {
      await unlink(temp).catch(() => undefined)
      throw error
    }
    // persist the rename itself (best effort: not every filesystem lets a directory be fsynced)
    const folder = await open(dirname(this.file), 'r').catch(() => undefined)
    if (folder !== undefined) {
      await folder.sync().catch(() => undefined)
      await folder.close()
    }
  }
}

/** Finds a job by exact id or exact name. */
export function findJob(jobs: readonly Job[], handle: string): Job | undefined {
  return jobs.find(job => job.id === handle) ?? jobs.find(job => job.name === handle)
}
