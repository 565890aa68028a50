/**
 * The lab's database on disk: a snapshot (`db.json`) and a journal of changed records. What
 * `readDatabase` returns after any sequence of saves is the database as of the last save — via
 * journal lines between snapshots, after compactions, after a crash that cut the last line short
 * or left a journal the snapshot no longer names — and a save writes only what changed.
 */
import { appendFile, copyFile, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { makeTempDir } from '../../test/helpers/tmp.js'
import { Database } from './db/database.js'
import { DatabaseSaver, readDatabase } from './persistence.js'

let tmp: { path: string; remove: () => Promise<void> }
let savers: DatabaseSaver[] = []

beforeEach(async () => {
  tmp = await makeTempDir()
})

afterEach(async () => {
  vi.useRealTimers()
  for (const saver of savers) saver.stop()
  savers = []
  await tmp.remove()
})

function saverFor(db: Database, options?: ConstructorParameters<typeof DatabaseSaver>[2]): DatabaseSaver {
  const saver = new DatabaseSaver(db, join(tmp.path, 'db.json'), options)
  savers.push(saver)
  return saver
}

/** The database `readDatabase` gives back, loaded as the lab does on a restart. */
async function reloaded(): Promise<Database> {
  const dump = await readDatabase(join(tmp.path, 'db.json'))
  expect(dump).toBeDefined()
  const db = new Database()
  db.restore(dump!)
  return db
}

async function journals(): Promise<string[]> {
  return (await readdir(tmp.path)).filter(name => name.endsWith('.journal')).sort()
}

async function journalLines(): Promise<string[]> {
  const [name] = await journals()
  expect(name).toBeDefined()
  return (await readFile(join(tmp.path, name!), 'utf8')).split('\n').filter(line => line !== '')
}

/** A small pool-like database: VMs with disks. */
function populated(vms = 5): { db: Database; vms: string[] } {
  const db = new Database()
  const sr = db.create('SR', { name_label: 'sr' })
  const refs: string[] = []
  for (let i = 0; i < vms; i++) {
    const vm = db.create('VM', { name_label: `vm-${i}`, other_config: { n: String(i) } })
    const vdi = db.create('VDI', { name_label: `disk-${i}`, SR: sr, virtual_size: 4096 * (i + 1) })
    db.create('VBD', { VM: vm, VDI: vdi, userdevice: '0' })
    refs.push(vm)
  }
  return { db, vms: refs }
}

describe('readDatabase', () => {
  it('is undefined when nothing was saved', async () => {
    expect(await readDatabase(join(tmp.path, 'db.json'))).toBeUndefined()
  })
})

describe('DatabaseSaver', () => {
  it('appends only the changed records and deleted refs, and a restart sees the last save', async () => {
    const { db, vms } = populated()
    const saver = saverFor(db)
    await saver.flush()
    expect(await journals()).toEqual([])
    const snapshot = await readFile(join(tmp.path, 'db.json'), 'utf8')

    db.update('VM', vms[0]!, { name_label: 'renamed' })
    const renamedAt = db.generation
    await saver.save()
    const vbd = db.related('VBD', 'VM', vms[1]!)[0]!
    db.destroy('VBD', vbd)
    const added = db.create('VM', { name_label: 'added' })
    await saver.save()
    await saver.save() // nothing changed: no line

    // the snapshot is untouched; the journal holds two lines with just what changed
    expect(await readFile(join(tmp.path, 'db.json'), 'utf8')).toBe(snapshot)
    const lines = (await journalLines()).map(line => JSON.parse(line) as Record<string, unknown>)
    expect(lines).toHaveLength(2)
    expect(lines[0]).toEqual({ g: renamedAt, put: { VM: { [vms[0]!]: { ...db.get('VM', vms[0]!) } } } })
    // the VM and VDI that lost their VBD only had a computed set change: they are not rewritten
    expect(lines[1]).toEqual({
      g: db.generation,
      del: { VBD: [vbd] },
      put: { VM: { [added]: { ...db.get('VM', added) } } },
    })

    const again = await reloaded()
    expect(again.dump()).toEqual(db.dump())
    expect(again.get('VM', vms[0]!)['name_label']).toBe('renamed')
    expect(again.find('VBD', vbd)).toBeUndefined()
    expect(again.toWire('VM', vms[1]!)['VBDs']).toEqual([])
  })

  it('saves a burst of changes once, the save delay after the first', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const { db, vms } = populated()
    const saver = saverFor(db, { delayMs: 100 })
    await saver.flush()
    for (let i = 0; i < 20; i++) db.update('VM', vms[i % vms.length]!, { name_description: `change ${i}` })
    expect(await journals()).toEqual([])
    vi.advanceTimersByTime(100)
    // the timer captured the burst: a change after it goes into the next line, not into that one
    db.update('VM', vms[0]!, { name_description: 'after the burst' })
    await saver.save()
    const lines = (await journalLines()).map(line => Object.keys((JSON.parse(line) as { put: { VM: object } }).put.VM))
    expect(lines).toEqual([expect.arrayContaining(vms), [vms[0]]])
    expect(lines[0]).toHaveLength(vms.length)
    expect((await reloaded()).dump()).toEqual(db.dump())
  })

  it('compacts the journal into a new snapshot once it outgrows the snapshot, and on flush', async () => {
    const { db, vms } = populated(3)
    const saver = saverFor(db, { compactMinBytes: 0 })
    await saver.flush()
    const snapshotBytes = (await stat(join(tmp.path, 'db.json'))).size
    const names = new Set<string>()
    let compactions = 0
    for (let i = 0; i < 40; i++) {
      db.update('VM', vms[i % vms.length]!, { other_config: { round: String(i), pad: 'x'.repeat(200) } })
      if (i % 7 === 0) db.create('VDI', { name_label: `extra-${i}` })
      await saver.save()
      const [name] = await journals()
      if (name !== undefined) names.add(name)
      const { journal } = JSON.parse(await readFile(join(tmp.path, 'db.json'), 'utf8')) as { journal: string }
      if (name === undefined) compactions++
      else expect(name).toBe(`db.json.${journal}.journal`)
      expect((await journals()).length).toBeLessThanOrEqual(1)
      // never more than a snapshot's worth of journal (plus the line that crossed it)
      if (name !== undefined) expect((await stat(join(tmp.path, name))).size).toBeLessThan(2 * snapshotBytes + 4096)
      expect((await reloaded()).dump()).toEqual(db.dump())
    }
    expect(compactions).toBeGreaterThan(2)
    expect(names.size).toBeGreaterThan(2)
    await saver.flush()
    expect(await journals()).toEqual([])
    const flushed = JSON.parse(await readFile(join(tmp.path, 'db.json'), 'utf8')) as { generation: number }
    expect(flushed.generation).toBe(db.generation)
    expect((await reloaded()).dump()).toEqual(db.dump())
  })

  it('skips a last line cut short by a crash, but a damaged line with lines after it is LAB_STATE_CORRUPT', async () => {
    const { db, vms } = populated()
    const saver = saverFor(db)
    await saver.flush()
    db.update('VM', vms[0]!, { name_label: 'kept' })
    await saver.save()
    const before = structuredClone(db.dump())
    db.update('VM', vms[1]!, { name_label: 'cut short' })
    await saver.save()
    const [name] = await journals()
    const file = join(tmp.path, name!)
    const text = await readFile(file, 'utf8')
    const cut = text.slice(0, text.length - 20)
    await writeFile(file, cut)
    expect((await reloaded()).dump()).toEqual(before)

    await appendFile(file, `\n${JSON.stringify({ g: db.generation + 1 })}\n`)
    await expect(readDatabase(join(tmp.path, 'db.json'))).rejects.toMatchObject({
      code: 'LAB_STATE_CORRUPT',
      file,
    })
  })

  it('ignores and then removes a journal the snapshot no longer names (a crash during compaction)', async () => {
    const { db, vms } = populated()
    const saver = saverFor(db)
    await saver.flush()
    db.update('VM', vms[0]!, { name_label: 'journalled' })
    const doomed = db.create('VM', { name_label: 'deleted later' })
    await saver.save()
    const [old] = await journals()
    await copyFile(join(tmp.path, old!), join(tmp.path, 'stale'))
    db.destroy('VM', doomed)
    await saver.flush()
    expect(await journals()).toEqual([])
    // as if the crash came between the new snapshot's rename and the old journal's removal
    await copyFile(join(tmp.path, 'stale'), join(tmp.path, old!))
    await writeFile(join(tmp.path, 'db.json.left-by-a-crash.tmp'), '{"half')
    const again = await reloaded()
    expect(again.find('VM', doomed)).toBeUndefined()
    expect(again.dump()).toEqual(db.dump())

    db.update('VM', vms[1]!, { name_label: 'after' })
    await saver.flush()
    expect((await readdir(tmp.path)).sort()).toEqual(['db.json', 'stale'])
  })

  it('reports a failed write on flush', async () => {
    const { db } = populated(1)
    const saver = new DatabaseSaver(db, join(tmp.path, 'missing', 'db.json'))
    savers.push(saver)
    await expect(saver.flush()).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
