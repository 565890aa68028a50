import { readdir, readFile, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ConfigError, LeaseError, UsageError, ValidationError } from '../errors.js'
import { makeTempDir } from '../../test/helpers/tmp.js'
import { buildJob } from './build-job.js'
import { withFileLock } from './file-lock.js'
import { JobStore } from './job-store.js'
import type { Job } from './types.js'

let tmp: { path: string; remove: () => Promise<void> }
beforeEach(async () => {
  tmp = await makeTempDir()
})
afterEach(async () => {
  await tmp.remove()
})

const defaults = { retention: 1, concurrency: 2, fullInterval: 0 }
function job(name: string): Job {
  return buildJob(
    { name, source: 's', target: 't', allVms: true, interval: '1h' },
    defaults,
    new Date('2026-01-01T00:00:00Z'),
  )
}

describe('JobStore', () => {
  it('treats a missing file as empty, creates folders on the first write, and round-trips jobs', async () => {
    const store = new JobStore(join(tmp.path, 'deep', 'er', 'jobs.json'))
    expect(await store.list()).toEqual([])
    const a = job('a')
    await store.add(a)
    expect(await new JobStore(store.file).list()).toEqual([a])
    expect(JSON.parse(await readFile(store.file, 'utf8'))).toMatchObject({
      version: 1,
      jobs: [{ id: a.id, name: 'a' }],
    })
    expect(await store.get('a')).toEqual(a)
    expect(await store.get(a.id)).toEqual(a)
  })

  it('refuses a second job with the same name or id and writes nothing', async () => {
    const store = new JobStore(join(tmp.path, 'jobs.json'))
    const a = job('a')
    await store.add(a)
    const before = await readFile(store.file, 'utf8')
    await expect(store.add(job('a'))).rejects.toBeInstanceOf(ValidationError)
    await expect(store.add({ ...job('b'), id: a.id })).rejects.toThrow(/already uses/)
    expect(await readFile(store.file, 'utf8')).toBe(before)
  })

  it('updates and removes by id or name; an unknown job is a UsageError', async () => {
    const store = new JobStore(join(tmp.path, 'jobs.json'))
    const a = job('a')
    await store.add(a)
    await store.add(job('b'))
    expect((await store.update('a', current => ({ ...current, enabled: false }))).enabled).toBe(false)
    expect((await store.get(a.id)).enabled).toBe(false)
    expect((await store.remove(a.id)).name).toBe('a')
    expect((await store.list()).map(j => j.name)).toEqual(['b'])
    await expect(store.remove('a')).rejects.toBeInstanceOf(UsageError)
    await expect(store.update('zzz', j => j)).rejects.toThrow(/no job with id or name "zzz"/)
  })

  it('loses no job when many writers add at once, and leaves no temporary or lock file', async () => {
    const store = new JobStore(join(tmp.path, 'jobs.json'), { retryMs: 1 })
    const names = Array.from({ length: 12 }, (_, index) => `job-${index}`)
    // separate store objects, as separate processes would have
    await Promise.all(names.map(name => new JobStore(store.file, { retryMs: 1 }).add(job(name))))
    expect((await store.list()).map(j => j.name).sort()).toEqual([...names].sort())
    expect(await readdir(tmp.path)).toEqual(['jobs.json'])
  })

  it('names the file and key of a hand-edited store that is invalid', async () => {
    const file = join(tmp.path, 'jobs.json')
    const good = job('a')
    await writeFile(
      file,
      JSON.stringify({
        version: 1,
        jobs: [{ ...good, schedules: [{ ...good.schedules[0], timing: { kind: 'interval', interval: 'soon' } }] }],
      }),
    )
    const error = await new JobStore(file).list().catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).key).toBe('jobs[0].schedules[0].timing')
    expect((error as ConfigError).message).toContain(file)
    await writeFile(file, JSON.stringify({ version: 2, jobs: [] }))
    await expect(new JobStore(file).list()).rejects.toThrow(/version/)
    await writeFile(file, '{"version": 1, "jobs": [')
    await expect(new JobStore(file).list()).rejects.toThrow(/not valid JSON/)
  })

  it('reports a store that cannot be written as a ConfigError naming the file', async () => {
    await writeFile(join(tmp.path, 'plain-file'), '')
    const store = new JobStore(join(tmp.path, 'plain-file', 'jobs.json'))
    const error = await store.add(job('a')).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).code).toBe('JOBS_FILE_UNWRITABLE')
    expect((error as ConfigError).message).toContain(store.file)
  })

  it('recomputes intervalMs from the interval text of a hand edit', async () => {
    const file = join(tmp.path, 'jobs.json')
    const good = job('a')
    await writeFile(
      file,
      JSON.stringify({
        version: 1,
        jobs: [
          {
            ...good,
            schedules: [{ ...good.schedules[0], timing: { kind: 'interval', interval: '2h', intervalMs: 1 } }],
          },
        ],
      }),
    )
    expect((await new JobStore(file).get('a')).schedules[0]?.timing).toEqual({
      kind: 'interval',
      interval: '2h',
      intervalMs: 7_200_000,
    })
  })
})

describe('JobStore.replace', () => {
  it('replaces the job it was given as read, keeping its id', async () => {
    const store = new JobStore(join(tmp.path, 'jobs.json'))
    const a = job('a')
    await store.add(a)
    await store.add(job('b'))
    await store.replace(a, { ...a, name: 'renamed', concurrency: 5, id: 'ignored' })
    expect(await store.get('renamed')).toEqual({ ...a, name: 'renamed', concurrency: 5 })
    expect((await store.list()).map(j => j.name)).toEqual(['renamed', 'b'])
  })

  it('writes nothing when the job changed since it was read, or when another job has the new name', async () => {
    const store = new JobStore(join(tmp.path, 'jobs.json'))
    const a = job('a')
    await store.add(a)
    await store.add(job('b'))
    await store.update('a', current => ({ ...current, concurrency: 9 }))
    const before = await readFile(store.file, 'utf8')
    await expect(store.replace(a, { ...a, concurrency: 3 })).rejects.toMatchObject({ code: 'JOB_CHANGED' })
    const fresh = await store.get('a')
    await expect(store.replace(fresh, { ...fresh, name: 'b' })).rejects.toMatchObject({ code: 'JOB_EXISTS' })
    await expect(store.replace(job('gone'), job('gone'))).rejects.toMatchObject({ code: 'JOB_NOT_FOUND' })
    expect(await readFile(store.file, 'utf8')).toBe(before)
  })
})

describe('withFileLock', () => {
  it('serialises holders', async () => {
    const lock = join(tmp.path, 'x.lock')
    const order: string[] = []
    await Promise.all(
      ['a', 'b', 'c'].map(name =>
        withFileLock(
          lock,
          async () => {
            order.push(`${name}+`)
            await new Promise(resolve => setImmediate(resolve))
            order.push(`${name}-`)
          },
          { retryMs: 1 },
        ),
      ),
    )
    // each holder's enter and leave are adjacent: nobody entered while another held the lock
    for (let index = 0; index < order.length; index += 2) expect(order[index]?.[0]).toBe(order[index + 1]?.[0])
  })

  it('breaks a lock left by a dead process on this host', async () => {
    const lock = join(tmp.path, 'x.lock')
    // pid 2^22+1 is above Linux's pid_max default, so no such process exists
    await writeFile(lock, JSON.stringify({ pid: 4_194_305, host: hostname(), token: 't', createdAt: Date.now() }))
    expect(await withFileLock(lock, async () => 'ran', { timeoutMs: 2_000, retryMs: 1 })).toBe('ran')
  })

  it('breaks a lock older than staleMs even if its holder seems alive', async () => {
    const lock = join(tmp.path, 'x.lock')
    await writeFile(
      lock,
      JSON.stringify({ pid: process.pid, host: hostname(), token: 't', createdAt: Date.now() - 120_000 }),
    )
    expect(await withFileLock(lock, async () => 'ran', { staleMs: 60_000, retryMs: 1 })).toBe('ran')
  })

  it('gives up with a LeaseError naming the holder when a live lock stays', async () => {
    const lock = join(tmp.path, 'x.lock')
    await writeFile(lock, JSON.stringify({ pid: process.pid, host: hostname(), token: 't', createdAt: Date.now() }))
    const error = await withFileLock(lock, async () => 'ran', { timeoutMs: 50, retryMs: 5 }).catch(
      (caught: unknown) => caught,
    )
    expect(error).toBeInstanceOf(LeaseError)
    expect((error as LeaseError).message).toContain(`process ${process.pid}`)
    // the live lock is not ours to remove
    expect(JSON.parse(await readFile(lock, 'utf8'))).toMatchObject({ token: 't' })
  })
})
