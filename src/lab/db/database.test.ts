/**
 * The database behind event.from (reference §3.6, §4.7): computed set fields follow the ref
 * fields that define them and give their owners a `mod`; per object at most one change is
 * reported since a generation, `add` winning over `mod`, and objects born and gone inside the
 * window produce nothing.
 */
import { describe, expect, it } from 'vitest'
import { isXapiFault } from '../fault.js'
import { Database, NULL_REF } from './database.js'

const all = (): boolean => true

describe('Database', () => {
  it('maintains computed sets from ref fields and reports a mod on their owners', () => {
    const db = new Database()
    const vm = db.create('VM', { name_label: 'vm' })
    const other = db.create('VM', { name_label: 'other' })
    const vdi = db.create('VDI', {})
    const since = db.generation
    const vbd = db.create('VBD', { VM: vm, VDI: vdi })
    expect(db.toWire('VM', vm)['VBDs']).toEqual([vbd])
    expect(db.toWire('VDI', vdi)['VBDs']).toEqual([vbd])
    expect(
      db
        .changesSince(since, all)
        .map(c => [c.ref, c.operation])
        .sort(),
    ).toEqual(
      [
        [vbd, 'add'],
        [vdi, 'mod'],
        [vm, 'mod'],
      ].sort(),
    )
    db.update('VBD', vbd, { VM: other })
    expect(db.toWire('VM', vm)['VBDs']).toEqual([])
    expect(db.toWire('VM', other)['VBDs']).toEqual([vbd])
    db.destroy('VBD', vbd)
    expect(db.toWire('VM', other)['VBDs']).toEqual([])
    // a dangling ref stays as stored: deleting does not rewrite other objects' ref fields
    const snap = db.create('VM', { snapshot_of: vm })
    db.destroy('VM', vm)
    expect(db.get('VM', snap)['snapshot_of']).toBe(vm)
  })

  it('fills every field with its default so all records of a class have the same keys', () => {
    const db = new Database()
    const a = db.toWire('VDI', db.create('VDI', {}))
    const b = db.toWire('VDI', db.create('VDI', { name_label: 'x', sm_config: { vdi_type: 'vhd' } }))
    expect(Object.keys(a)).toEqual(Object.keys(b))
    expect(a['snapshot_of']).toBe(NULL_REF)
    expect(a['other_config']).toEqual({})
  })

  it('reports one change per object: add over mod, del only for objects older than the token', () => {
    const db = new Database()
    const old = db.create('network', {})
    const doomed = db.create('network', {})
    const since = db.generation
    db.update('network', old, { name_label: 'a' })
    db.update('network', old, { name_label: 'b' })
    const fresh = db.create('network', {})
    db.update('network', fresh, { name_label: 'c' })
    const ephemeral = db.create('network', {})
    db.destroy('network', ephemeral)
    db.destroy('network', doomed)
    const changes = db.changesSince(since, all)
    expect(changes.map(c => [c.ref, c.operation])).toEqual([
      [old, 'mod'],
      [fresh, 'add'],
      [doomed, 'del'],
    ])
    expect(db.changesSince(-1, all).map(c => c.operation)).toEqual(['add', 'add'])
  })

  it('reports from any token each object once, at its last change, after the change log was compacted', () => {
    // changesSince reads a log of modifications that is compacted as it grows (here past a
    // thousand entries): a token from before a compaction must still see every object changed
    // since, once, with the generation of its latest change, in generation order
    const db = new Database()
    const networks = Array.from({ length: 20 }, (_, i) => db.create('network', { name_label: `n${i}` }))
    const lastChange = new Map(networks.map(ref => [ref, db.generation]))
    const tokens: number[] = [db.generation]
    for (let round = 0; round < 3000; round++) {
      const ref = networks[(round * 7) % 19]!
      db.update('network', ref, { name_label: `r${round}` })
      lastChange.set(ref, db.generation)
      if (round % 500 === 0) tokens.push(db.generation)
    }
    const late = db.create('network', {})
    lastChange.set(late, db.generation)
    const gone = networks[3]!
    db.destroy('network', gone)
    lastChange.delete(gone)
    for (const since of tokens) {
      const expected = [...lastChange]
        .filter(([, generation]) => generation > since)
        .sort((a, b) => a[1] - b[1])
        .map(([ref, generation]) => [ref, generation])
      const changes = db.changesSince(since, all)
      expect(changes.filter(c => c.operation !== 'del').map(c => [c.ref, c.generation])).toEqual(expected)
      expect(changes.filter(c => c.operation === 'del').map(c => c.ref)).toEqual([gone])
      expect(changes.map(c => c.generation)).toEqual(changes.map(c => c.generation).sort((a, b) => a - b))
    }
  })

  it('looks objects up by ref, uuid or indexed ref field in the order a scan lists them', () => {
    const db = new Database()
    const [a, b] = [db.create('VM', {}), db.create('VM', {})]
    const first = db.create('VBD', { VM: a })
    const second = db.create('VBD', { VM: b })
    // re-pointed: the index of b now holds second before first, the class lists first before second
    db.update('VBD', first, { VM: b })
    expect(db.lookup('VBD', [{ field: 'VM', value: b }])).toEqual([first, second])
    expect(db.lookup('VBD', [{ field: 'VM', value: a }])).toEqual([])
    const uuid = db.get('VBD', second)['uuid'] as string
    expect(
      db.lookup('VBD', [
        { field: 'uuid', value: uuid },
        { field: '_ref', value: first },
        { field: '_ref', value: a },
      ]),
    ).toEqual([first, second])
    // no index on the field: the caller scans
    expect(db.lookup('VBD', [{ field: 'device', value: '0' }])).toBeUndefined()
  })

  it('fails lookups with HANDLE_INVALID and UUID_INVALID', () => {
    const db = new Database()
    const error = (() => {
      try {
        db.get('SR', 'OpaqueRef:x')
      } catch (e) {
        return e
      }
      return undefined
    })()
    expect(isXapiFault(error, 'HANDLE_INVALID') && error.params).toEqual(['SR', 'OpaqueRef:x'])
    expect(() => db.byUuid('SR', 'u')).toThrow(/UUID_INVALID/)
  })

  it('round-trips through dump and restore', () => {
    const db = new Database()
    const vm = db.create('VM', { name_label: 'vm', other_config: { k: 'v' } })
    const vbd = db.create('VBD', { VM: vm })
    const copy = new Database()
    copy.restore(db.dump())
    expect(copy.toWire('VM', vm)).toEqual(db.toWire('VM', vm))
    expect(copy.toWire('VM', vm)['VBDs']).toEqual([vbd])
    expect(copy.generation).toBeGreaterThanOrEqual(db.generation)
  })
})
