/**
 * The writes of a delta pass, counted by the lab per pool and method: each object's map is
 * written whole, in one call, with what the record already read says — never a remove/add pair
 * per key where nothing else writes the map — and the replica VM gets its keys and tag in the
 * `VM.create` record itself. Why: a one-VM, one-disk delta pass made 58 map writes (46 of them
 * `remove_from_*`/`add_to_*` pairs on `other_config` and `blocked_operations`), and a kill between
 * `VM.create` and blocking start left a replica no later pass recognised.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { LabTransferStats } from '../../src/lab/transfer-stats.js'
import { runPass } from '../../src/replication/pass.js'
import { makeJob, startFixture, type Fixture } from './replication-fixture.js'

type Calls = LabTransferStats['xapi']['byMethod']

let f: Fixture | undefined
afterEach(async () => {
  await f?.close()
  f = undefined
})

function diff(after: Calls, before: Calls): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [method, { calls }] of Object.entries(after)) {
    const n = calls - (before[method]?.calls ?? 0)
    if (n > 0) out[method] = n
  }
  return out
}

/** The calls that change something, without task bookkeeping. */
const writes = (calls: Record<string, number>): Record<string, number> =>
  Object.fromEntries(
    Object.entries(calls).filter(
      ([m]) =>
        /\.(set_|add_to_|remove_from_|add_tags|remove_tags|create|destroy|clone|snapshot)/.test(m) &&
        !m.startsWith('task.'),
    ),
  )

describe('writes of a delta pass', () => {
  it('writes every map whole, in one call, and creates the replica with its keys and tag', async () => {
    f = await startFixture()
    const job = makeJob(f, {}, 2)
    const pass = async (): Promise<void> => {
      const result = await runPass({ job, source: f!.source, target: f!.target })
      expect(result.results.map(r => r.status)).toEqual(['success'])
    }
    await pass()
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [1], seed: 7 })
    await pass()
    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [2], seed: 8 })
    const before = {
      src: f.lab.control.transferStats('src').xapi.byMethod,
      tgt: f.lab.control.transferStats('tgt').xapi.byMethod,
    }
    // the third pass: a delta (two disks) that also rotates one replica (retention 2) and one snapshot
    await pass()
    const source = writes(diff(f.lab.control.transferStats('src').xapi.byMethod, before.src))
    const target = writes(diff(f.lab.control.transferStats('tgt').xapi.byMethod, before.tgt))

    // no per-key pairs anywhere, but the lease entries on the source VM (an atomic create-if-absent)
    for (const calls of [source, target])
      for (const method of [
        'VDI.add_to_other_config',
        'VDI.remove_from_other_config',
        'VM.add_to_blocked_operations',
        'VM.remove_from_blocked_operations',
        'VM.add_tags',
      ])
        expect(calls[method] ?? 0, method).toBe(0)
    expect(target['VM.add_to_other_config'] ?? 0).toBe(0)
    expect(target['VM.remove_from_other_config'] ?? 0).toBe(0)

    // source: the snapshot, its keys (VM, 2 disks), its name, then the exported marker (VM, 2 disks)
    expect(source).toMatchObject({
      'VM.snapshot': 1,
      'VM.set_is_a_template': 1,
      'VM.set_other_config': 2,
      'VDI.set_other_config': 4,
      'VM.set_name_label': 1,
    })
    // target: the VM with its keys and tag, start blocked once (for good, from its creation),
    // each clone (a plain call) with its keys and completion, the VM's completion; rotation dates
    // the old replica first
    expect(target).toMatchObject({
      'VM.create': 1,
      'VM.set_blocked_operations': 1,
      'VDI.clone': 2,
      'VDI.set_other_config': 4,
      'VM.set_name_label': 1,
      'VM.set_other_config': 2,
      'VBD.create': 2,
    })
    const mine = (calls: Record<string, number>): number =>
      Object.entries(calls)
        .filter(([m]) => !/other_config$/.test(m) || m.includes('set_other_config'))
        .reduce((n, [, c]) => n + c, 0)
    console.log(
      `writes of a two-disk delta pass with one rotation: source ${JSON.stringify(source)}, target ${JSON.stringify(target)}; ` +
        `${mine(source) + mine(target)} without the lease entries`,
    )
  })
})
