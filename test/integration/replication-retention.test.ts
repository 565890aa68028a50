import { afterEach, describe, expect, it } from 'vitest'
import { runPass } from '../../src/replication/pass.js'
import { KEYS } from '../../src/replication/metadata.js'
import { createVbd } from '../../src/xapi/vbd.js'
import { createVdi } from '../../src/xapi/vdi.js'
import type { LabSpec } from '../../src/lab/spec.js'
import {
  expectReplicaMatches,
  jobSnapshots,
  makeJob,
  replicas,
  startFixture,
  type Fixture,
} from './replication-fixture.js'

let f: Fixture | undefined
afterEach(async () => {
  await f?.close()
  f = undefined
})

describe('retention and topologies', () => {
  it('retention 3 over 5 passes within one pool leaves the 3 newest replicas and 1 source snapshot', async () => {
    f = await startFixture(undefined, { samePool: true })
    const srUuid = f.srs['Local storage']!
    const job = makeJob(f, { srs: [srUuid] }, 3)
    const names: string[] = []
    let t = Date.UTC(2026, 0, 1)
    for (let i = 0; i < 5; i++) {
      if (i > 0) await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [i], seed: 100 + i })
      t += 3_600_000
      const at = t
      const result = await runPass({ job, source: f.source, target: f.target, now: () => new Date(at) })
      expect(result.results).toMatchObject([{ status: 'success', mode: i === 0 ? 'full' : 'delta' }])
      const reps = await replicas(f.target, job.id, f.vmUuid)
      names.push(reps[reps.length - 1]![1].name_label)
    }
    const reps = await replicas(f.target, job.id, f.vmUuid)
    expect(reps.map(([, r]) => r.name_label)).toEqual(names.slice(2))
    const snaps = await jobSnapshots(f.source, job.id, f.vmRef)
    expect(snaps).toHaveLength(1)
    // the survivor is the newest snapshot, and the newest replica is its copy
    expect(reps[2]![1].other_config[KEYS.copyOf]).toBe(snaps[0]![1].uuid)
    const h = await expectReplicaMatches(f, reps[2]![0], snaps[0]![0])
    expect(h.replica).toEqual(h.snapshot)
    // no replica disk was left behind by rotation: 3 replicas × 2 disks + the VM's 2 + the snapshot's 2
    const vdis = await f.target.getAllRecords('VDI')
    // (the SR's hidden base copies have no VBD either, as on a real VHD SR: managed = false)
    expect([...vdis.values()].filter(v => v.managed && v.VBDs.length === 0)).toEqual([])
  })

  it('writes one replica per target SR, each matching the snapshot, and continues each with a delta', async () => {
    f = await startFixture()
    // with a job rate limit, shared by the four concurrent disk streams (functional here, not timed)
    const job = makeJob(f, { srs: [f.srs['Replica A']!, f.srs['Replica B']!], maxRate: 512 * 1024 * 1024 })
    const first = await runPass({ job, source: f.source, target: f.target })
    expect(first.results).toMatchObject([{ status: 'success', mode: 'full' }])
    expect(first.results[0]?.status === 'success' && first.results[0].replicas.map(r => r.srName).sort()).toEqual([
      'Replica A',
      'Replica B',
    ])

    await f.lab.control.writeGuestData('src', f.vmUuid, { blocks: [2], seed: 7 })
    const second = await runPass({ job, source: f.source, target: f.target })
    expect(second.results).toMatchObject([{ status: 'success', mode: 'delta' }])
    expect(second.plans[0]?.targets.map(t => t.disks.map(d => d.mode))).toEqual([
      ['delta', 'delta'],
      ['delta', 'delta'],
    ])
    const snap = (await jobSnapshots(f.source, job.id, f.vmRef))[0]![0]
    for (const sr of ['Replica A', 'Replica B']) {
      const reps = await replicas(f.target, job.id, f.vmUuid, f.srs[sr])
      expect(reps).toHaveLength(2)
      const h = await expectReplicaMatches(f, reps[1]![0], snap)
      expect(h.replica).toEqual(h.snapshot)
      // every disk of the replica lives on its own SR
      for (const vbd of reps[1]![1].VBDs) {
        const vdi = await f.target.getRecord('VDI', (await f.target.getRecord('VBD', vbd)).VDI)
        expect((await f.target.getRecord('SR', vdi.SR)).uuid).toBe(f.srs[sr])
      }
    }
  })

  it('sends a disk added between passes in full and the others as deltas', async () => {
    f = await startFixture()
    const job = makeJob(f)
    await runPass({ job, source: f.source, target: f.target })
    const vm = await f.source.getRecord('VM', f.vmRef)
    const firstVbd = await f.source.getRecord('VBD', vm.VBDs[0]!)
    const sr = (await f.source.getRecord('VDI', firstVbd.VDI)).SR
    const added = await createVdi(f.source, { SR: sr, virtual_size: 4 * 1024 * 1024, name_label: 'web scratch' })
    await createVbd(f.source, { VM: f.vmRef, VDI: added, userdevice: '2' })
    const addedUuid = (await f.source.getRecord('VDI', added)).uuid
    await f.lab.control.writeGuestData('src', addedUuid, { blocks: [1], seed: 21 })

    const second = await runPass({ job, source: f.source, target: f.target })
    expect(second.results).toMatchObject([{ status: 'success', mode: 'delta' }])
    expect(second.plans[0]?.targets[0]?.disks.map(d => [d.userdevice, d.mode, d.reason])).toEqual([
      ['0', 'delta', undefined],
      ['1', 'delta', undefined],
      ['2', 'full', 'new-disk'],
    ])
    const snap = (await jobSnapshots(f.source, job.id, f.vmRef))[0]![0]
    const reps = await replicas(f.target, job.id, f.vmUuid)
    const h = await expectReplicaMatches(f, reps[1]![0], snap)
    expect(h.replica).toHaveLength(3)
    expect(h.replica).toEqual(h.snapshot)
  })

  it('selects VMs by tag within one pool, two at a time, and never replicates its own replicas', async () => {
    const spec: LabSpec = {
      pools: [
        {
          name: 'src',
          srs: [{ name: 'Local storage' }],
          vms: [
            { name: 'web', tags: ['prod'], disks: [{ size: '4 MiB', filled: '2 MiB', seed: 1 }] },
            { name: 'db', tags: ['prod'], disks: [{ size: '4 MiB', filled: '2 MiB', seed: 2 }] },
            { name: 'scratch', disks: [{ size: '4 MiB', seed: 3 }] },
          ],
        },
      ],
    }
    f = await startFixture(spec, { samePool: true })
    const job = makeJob(f, {
      vms: { uuids: [], tags: ['prod'], all: false },
      srs: [f.srs['Local storage']!],
      concurrency: 2,
    })
    for (const mode of ['full', 'delta']) {
      const result = await runPass({ job, source: f.source, target: f.target })
      expect(result.results.map(r => [r.vm.name, r.status, r.status === 'success' && r.mode]).sort()).toEqual([
        ['db', 'success', mode],
        ['web', 'success', mode],
      ])
    }
    // the replicas carry the tag too, yet only the two VMs were ever replicated
    const vms = [...(await f.source.getAllRecords('VM')).values()].filter(v => !v.is_a_snapshot && !v.is_control_domain)
    expect(vms.filter(v => v.tags.includes('prod')).length).toBe(2 + 4)
  })
})
