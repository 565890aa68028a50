import { Chalk } from 'chalk'
import { describe, expect, it } from 'vitest'
import type { SeedPlan } from '../../replication/seed/plan-seed.js'
import type { FormatContext } from './formatter.js'
import { seedFormatters } from './seed-formatters.js'

const style = new Chalk({ level: 0 })
const context: FormatContext = { medium: 'plain', quiet: false }
const MiB = 1024 ** 2

function plan(targetName: string): SeedPlan {
  const object = (uuid: string, name: string) => ({ ref: `r-${uuid}`, uuid, name })
  return {
    identity: { jobId: 'j', scheduleId: 's', vmUuid: 'v' },
    datetime: '20260102T11:30:00Z',
    snapshot: object('snap', '[XO Backup nightly] db-01'),
    sourceVm: object('v', 'db-01'),
    targetVm: object('copy', targetName),
    sr: object('sr', 'Replica A'),
    replicaName: 'db-01 - nightly - (20260102T113000Z)',
    pairs: [],
    changes: [],
    warnings: [],
  }
}

describe('seed formatters', () => {
  it('name the copy by its final name, not the temporary one of a guided import', () => {
    const lines = (name: string) =>
      seedFormatters['seed-plan'].format({ kind: 'seed-plan', plan: plan(name), dryRun: false }, style, context)
    expect(lines('[Importing…] db-01 - nightly - (20260102T113000Z)')[0]).toBe(
      'seed of db-01 - nightly - (20260102T113000Z) (copy) on SR Replica A as the copy of snapshot [XO Backup nightly] db-01 (snap) of VM db-01',
    )
    // a hand-made copy is renamed: its current name is said too
    expect(lines('db-01 copy')[0]).toMatch(
      /^seed of db-01 - nightly - \(20260102T113000Z\) \(copy, now named "db-01 copy"\) on SR/,
    )
  })

  it('count a sampled verification in sampled bytes, and a file in its known length', () => {
    const verify = seedFormatters['seed-verify-progress']
    const event = {
      kind: 'seed-verify-progress',
      userdevice: '0',
      side: 'source',
      bytes: 2 * MiB,
      total: 4 * MiB,
      read: 9 * MiB,
    } as const
    expect(verify.format(event, style, context)).toEqual(['verifying disk 0 (source): 2 MiB of 4 MiB (50 %) compared'])
    expect(verify.live?.transfer?.(event)).toEqual({ label: 'verify disk 0 source', bytes: 2 * MiB, total: 4 * MiB })
    const file = seedFormatters['seed-file-progress']
    const exported = {
      kind: 'seed-file-progress',
      file: 'seed.xva',
      userdevice: 'all',
      bytes: 3 * MiB,
      virtualSize: 64 * MiB,
      direction: 'export',
    } as const
    expect(file.format(exported, style, context)).toEqual(['exporting the VM seed.xva: 3 MiB'])
    expect(file.format({ ...exported, direction: 'import', total: 12 * MiB }, style, context)).toEqual([
      'importing the VM seed.xva: 3 MiB of 12 MiB (25 %)',
    ])
  })
})
