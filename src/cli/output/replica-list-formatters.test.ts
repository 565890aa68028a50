import { Chalk } from 'chalk'
import { describe, expect, it } from 'vitest'
import type { JobListing } from '../../replication/list.js'
import { formatAge, formatReplicaList } from './replica-list-formatters.js'

const style = new Chalk({ level: 0 })

describe('formatAge', () => {
  it('reads at a glance at every scale', () => {
    expect([undefined, 4_000, 12 * 60_000, 3 * 3_600_000 + 5 * 60_000, 50 * 3_600_000].map(formatAge)).toEqual([
      '-',
      '4s',
      '12m',
      '3h05m',
      '2d02h',
    ])
  })
})

describe('formatReplicaList', () => {
  const listing: JobListing = {
    job: { id: 'job-1', name: 'nightly', enabled: false },
    rpoMs: 3_600_000,
    vms: [
      {
        vm: { uuid: 'vm-a', name: 'web' },
        ageMs: 600_000,
        status: 'ok',
        replicas: [
          {
            uuid: 'r1',
            name: 'web - nightly - (20260102T113000Z)',
            srUuid: 's',
            srName: 'Replica A',
            scheduleId: 'x',
            datetime: '20260102T11:30:00Z',
            ageMs: 600_000,
            chain: 'delta',
            complete: true,
          },
          {
            uuid: 'r0',
            name: '[Importing…] web',
            srUuid: 's',
            srName: 'Replica A',
            scheduleId: 'x',
            datetime: undefined,
            ageMs: undefined,
            chain: 'unknown',
            complete: false,
          },
        ],
      },
      { vm: { uuid: 'vm-b', name: 'db' }, ageMs: undefined, status: 'never', replicas: [] },
    ],
  }

  it('shows one line per VM with its uuid and status, and one per replica with its uuid', () => {
    const lines = formatReplicaList({ kind: 'replica-list', listings: [listing] }, style)
    expect(lines[0]).toBe('job "nightly" (job-1) [disabled], RPO 1h00m')
    expect(lines[1]).toMatch(/^VM +REPLICA +UUID +SR +DATETIME +AGE +CHAIN +STATUS$/)
    expect(lines[2]).toMatch(/^web +1 replica\(s\) +vm-a +10m +ok$/)
    expect(lines[3]).toMatch(/web - nightly - \(20260102T113000Z\) +r1 +Replica A +20260102T11:30:00Z +10m +delta/)
    expect(lines[4]).toMatch(/r0 +.*importing +- +unknown +interrupted$/)
    expect(lines[5]).toMatch(/^db +0 replica\(s\) +vm-b +- +never$/)
  })

  it('says so when there are no jobs', () => {
    expect(formatReplicaList({ kind: 'replica-list', listings: [] }, style)).toEqual([
      'no jobs; create one with: xen-cr job create --help',
    ])
  })
})
