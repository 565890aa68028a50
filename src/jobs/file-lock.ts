/**
 * The lock of the job store file, held for the milliseconds of a write (runs coordinate through
 * leases in XAPI, `replication/vm-lease.ts`, never through this machine's disk). Hand-written
 * rather than proper-lockfile (4.1.2), which lacks what the store relies on:
 * - a holder killed outright (SIGKILL, OOM) is recognised at once by its pid on this host, so
 *   the next `job` command goes ahead; proper-lockfile judges staleness by the lock's mtime alone
 *   (a holder refreshes it on a timer), so that lock would block every edit for its `stale` time
 *   (job-store.test.ts: "breaks a lock left by a dead process on this host");
 * - the holder's pid and host are recorded, so FILE_LOCKED names who holds the lock; its lock is
 *   an empty directory that says nothing ("gives up with a LeaseError naming the holder");
 * - waiting honours an AbortSignal and an overall timeout; its retries are a count with
 *   exponential back-off, and while held, its default `onCompromised` throws from a timer —
 *   a process whose event loop stalls past `stale` would crash rather than carry on.
 */
import { randomUUID } from 'node:crypto'
import { link, open, readFile, rename, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { AbortedError, LeaseError } from '../errors.js'

export interface FileLockOptions {
  /** give up after this long (default 10 s) */
  timeoutMs?: number
  /** a lock older than this is stale even if its process seems alive (default 60 s; holders keep it for milliseconds) */
  staleMs?: number
  /** pause between attempts (default 25 ms) */
  retryMs?: number
  signal?: AbortSignal
}

interface LockContent {
  pid: number
  host: string
  token: string
  createdAt: number
}

function errorCode(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error ? String(error.code) : undefined
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists but belongs to someone else
    return errorCode(error) === 'EPERM'
  }
}

async function readLock(path: string): Promise<LockContent | undefined> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'))
    if (typeof parsed === 'object' && parsed !== null && 'token' in parsed && 'pid' in parsed)
      return parsed as LockContent
    return undefined
  } catch {
    // vanished, or caught between create and write: treat as not (yet) judgeable
    return undefined
  }
}

function isStale(lock: LockContent, staleMs: number, now: number): boolean {
  if (now - lock.createdAt > staleMs) return true
  return lock.host === hostname() && !processAlive(lock.pid)
}

/**
 * Breaks a stale lock without ever deleting a fresh one: the lock is renamed aside (only one
 * contender can rename a given file), and if what was moved is not the lock judged stale — a
 * contender broke it and took a new one in between — it is linked back (link fails rather
 * than overwrite if yet another lock appeared).
 */
async function breakStaleLock(path: string, stale: LockContent): Promise<void> {
  const aside = `${path}.${randomUUID()}.stale`
  try {
    await rename(path, aside)
  } catch {
    return
  }
  const moved = await readLock(aside)
  if (moved?.token !== stale.token) {
    await link(aside, path).catch(() => undefined)
  }
  await unlink(aside).catch(() => undefined)
}

/**
 * Runs `fn` while holding `<path>` created with O_EXCL, which is atomic on local filesystems and
 * NFSv3+. Locks left by a crashed process (same host, pid gone) or older than `staleMs` are broken.
 * @throws LeaseError `FILE_LOCKED` when the lock stays held past the timeout
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000
  const staleMs = options.staleMs ?? 60_000
  const retryMs = options.retryMs ?? 25
  const started = Date.now()
  const content: LockContent = { pid: process.pid, host: hostname(), token: randomUUID(), createdAt: Date.now() }
  for (;;) {
    if (options.signal?.aborted === true) throw new AbortedError(`waiting for lock ${path} aborted`)
    try {
      const handle = await open(path, 'wx', 0o644)
      try {
        await handle.writeFile(JSON.stringify({ ...content, createdAt: Date.now() }))
      } finally {
        await handle.close()
      }
      break
    } catch (error) {
      if (errorCode(error) !== 'EEXIST') throw error
    }
    const holder = await readLock(path)
    if (holder !== undefined && isStale(holder, staleMs, Date.now())) {
      await breakStaleLock(path, holder)
      continue
    }
    if (Date.now() - started >= timeoutMs) {
      const who = holder === undefined ? 'another process' : `process ${holder.pid} on ${holder.host}`
      throw new LeaseError(
        'FILE_LOCKED',
        `${path} is held by ${who}; retry, or delete the lock file if that process is gone`,
      )
    }
    await sleep(retryMs, undefined, options.signal === undefined ? {} : { signal: options.signal }).catch(
      () => undefined,
    )
  }
  try {
    return await fn()
  } finally {
    // only remove our own lock: a stale-breaker may have replaced it if we overran staleMs
    const current = await readLock(path)
    if (current?.token === content.token) await unlink(path).catch(() => undefined)
  }
}
