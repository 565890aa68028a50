/**
 * One lab per directory: two labs on the same `--dir` would each save their own database over
 * the other's and write different ports and passwords into the same config file, so the second
 * one is refused while the first runs. The lock is `<dir>/lab.lock`, created with O_EXCL and
 * holding the owner's pid; a lock whose pid is gone (a lab killed with SIGKILL) is taken over.
 */
import { link, open, readFile, rename, unlink } from 'node:fs/promises'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { LabSetupError } from './lab-error.js'

const LOCK = 'lab.lock'

function errnoCode(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error ? String(error.code) : undefined
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to another user
    return errnoCode(error) === 'EPERM'
  }
}

async function readPid(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '')
  const pid = Number(text.trim())
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

/**
 * Moves a dead owner's lock out of the way without ever removing a live one: the lock is renamed
 * aside (only one contender can rename a given file) and linked back if what moved is not the
 * lock judged stale (another contender took it over in between).
 */
async function takeOver(path: string, stalePid: number): Promise<void> {
  const aside = `${path}.${randomUUID()}.stale`
  try {
    await rename(path, aside)
  } catch {
    return
  }
  if ((await readPid(aside)) !== stalePid) await link(aside, path).catch(() => undefined)
  await unlink(aside).catch(() => undefined)
}

/**
 * Takes the lock of the lab directory `dir` (which exists) for this process.
 * @returns the release, which removes the lock if it is still ours
 * @throws LabSetupError `LAB_DIR_IN_USE` when a live process holds it
 */
export async function lockLabDir(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, LOCK)
  // A holder caught between creating the file and writing its pid has no pid yet: a few short
  // retries let it finish before it is reported by pid, or as "another process".
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o644)
      try {
        await handle.writeFile(`${process.pid}\n`)
      } finally {
        await handle.close()
      }
      return async () => {
        if ((await readPid(path)) === process.pid) await unlink(path).catch(() => undefined)
      }
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw error
    }
    const holder = await readPid(path)
    if (holder !== undefined && !processAlive(holder)) {
      await takeOver(path, holder)
      continue
    }
    if (holder === undefined && attempt < 20) {
      await sleep(25)
      continue
    }
    throw new LabSetupError(
      'LAB_DIR_IN_USE',
      `lab directory ${dir} is in use by ${holder === undefined ? 'another process' : `process ${holder}`} (${path}); stop that lab first, or give another --dir`,
      { file: path },
    )
  }
}
