import { describe, expect, it } from 'vitest'
import {
  KEYS,
  PLACEHOLDER_DATETIME,
  START_BLOCKED_MESSAGE,
  dateFromReplicaName,
  datetimeSortKey,
  exportedKeys,
  formatNameDate,
  formatXapiDateTime,
  isPlaceholderDatetime,
  parseXapiDateTime,
  readReplica,
  readSourceSnapshot,
  replicaBelongsTo,
  replicaName,
  replicaVdiKeys,
  replicaVmKeys,
  sourceSnapshotVdiKeys,
} from './metadata.js'

const when = new Date(Date.UTC(2026, 7, 21, 15, 31, 45, 678))
const id = { jobId: 'job-1', scheduleId: 'sch-1', vmUuid: 'vm-1' }

describe('value formats', () => {
  it('formats datetimes in XAPI form with colons and names without', () => {
    expect(formatXapiDateTime(when)).toBe('20260821T15:31:45Z')
    expect(formatNameDate(when)).toBe('20260821T153145Z')
    expect(replicaName('web', 'nightly', when)).toBe('web - nightly - (20260821T153145Z)')
  })

  it('parses every datetime spelling XO and XAPI produce', () => {
    expect(parseXapiDateTime('20260821T15:31:45Z')?.toISOString()).toBe('2026-08-21T15:31:45.000Z')
    expect(parseXapiDateTime('20260821T153145Z')?.toISOString()).toBe('2026-08-21T15:31:45.000Z')
    expect(parseXapiDateTime('2026-08-21T15:31:45.000Z')?.toISOString()).toBe('2026-08-21T15:31:45.000Z')
    expect(parseXapiDateTime('yesterday')).toBeUndefined()
    expect(datetimeSortKey('2026-08-21T15:31:45.000Z')).toBe('20260821T15:31:45Z')
  })

  it('recognises the 1970 placeholder in both spellings', () => {
    expect(PLACEHOLDER_DATETIME).toBe('19700101T000000Z')
    expect(isPlaceholderDatetime(PLACEHOLDER_DATETIME)).toBe(true)
    expect(isPlaceholderDatetime('19700101T00:00:00Z')).toBe(true)
    expect(isPlaceholderDatetime('20260821T15:31:45Z')).toBe(false)
  })

  it('reads the date of an era-A replica name', () => {
    expect(dateFromReplicaName('web - nightly - (20260821T153145Z)')?.getTime()).toBe(Date.UTC(2026, 7, 21, 15, 31, 45))
    expect(dateFromReplicaName('web (20260821T15:31:45Z)')).toBeUndefined()
  })

  it('keeps the exact XO protection message', () => {
    expect(START_BLOCKED_MESSAGE).toBe('Start operation for this vm is blocked, clone it if you want to use it.')
  })
})

describe('keys written', () => {
  it('writes era-B keys on replica VM and disks, plus the content key on disks', () => {
    expect(replicaVmKeys(id, 'sr-1', 'snap-vm', PLACEHOLDER_DATETIME)).toEqual({
      'xo:copy_of': 'snap-vm',
      'xo:backup:job': 'job-1',
      'xo:backup:schedule': 'sch-1',
      'xo:backup:vm': 'vm-1',
      'xo:backup:sr': 'sr-1',
      'xo:backup:datetime': '19700101T000000Z',
    })
    expect(replicaVdiKeys(id, 'sr-1', { vdiUuid: 'snap-vdi', contentKey: 'ck' }, 'D')).toMatchObject({
      'xo:copy_of': 'snap-vdi',
      'xo:backup:contentKey': 'ck',
      'xo:backup:sr': 'sr-1',
    })
    expect(sourceSnapshotVdiKeys(id, 'D', 'snap-vdi')[KEYS.contentKey]).toBe('snap-vdi')
    expect(exportedKeys(3)).toEqual({ 'xo:backup:deltaChainLength': '3', 'xo:backup:exported': 'true' })
  })
})

describe('readSourceSnapshot', () => {
  const vmKeys = {
    [KEYS.datetime]: '20260821T15:31:45Z',
    [KEYS.job]: 'job-1',
    [KEYS.schedule]: 'sch-1',
    [KEYS.vm]: 'vm-1',
  }

  it('reads an era-A snapshot (xo-cr-seed: VM keys only, exported, no chain length)', () => {
    const meta = readSourceSnapshot({ ...vmKeys, [KEYS.exported]: 'true' }, [{}, {}])
    expect(meta).toMatchObject({ era: 'A', exported: true, deltaChainLength: 0, jobId: 'job-1' })
  })

  it('reads an era-B snapshot and takes the largest chain length', () => {
    const disk = { ...vmKeys, [KEYS.exported]: 'true', [KEYS.deltaChainLength]: '4' }
    const meta = readSourceSnapshot({ ...vmKeys, [KEYS.exported]: 'true', [KEYS.deltaChainLength]: '2' }, [disk])
    expect(meta).toMatchObject({ era: 'B', exported: true, deltaChainLength: 4 })
  })

  it('reads an era-C snapshot by its content keys', () => {
    const meta = readSourceSnapshot({ ...vmKeys, [KEYS.exported]: 'true' }, [
      { ...vmKeys, [KEYS.exported]: 'true', [KEYS.contentKey]: 'x' },
    ])
    expect(meta?.era).toBe('C')
  })

  it('is not exported while a keyed disk lacks the marker (transfer did not finish)', () => {
    const meta = readSourceSnapshot({ ...vmKeys, [KEYS.exported]: 'true' }, [{ ...vmKeys }])
    expect(meta?.exported).toBe(false)
  })

  it('ignores snapshots without job or datetime', () => {
    expect(readSourceSnapshot({ [KEYS.job]: 'job-1' }, [])).toBeUndefined()
    expect(readSourceSnapshot({ [KEYS.datetime]: '20260821T15:31:45Z' }, [])).toBeUndefined()
  })
})

describe('readReplica', () => {
  const blocked = { start: START_BLOCKED_MESSAGE, start_on: START_BLOCKED_MESSAGE }

  it('treats a placeholder datetime as incomplete', () => {
    const meta = readReplica({
      name_label: 'x',
      other_config: { [KEYS.datetime]: PLACEHOLDER_DATETIME },
      blocked_operations: blocked,
    })
    expect(meta.complete).toBe(false)
    expect(meta.datetime).toBeUndefined()
  })

  it('treats an Importing… block as incomplete even with a datetime', () => {
    const meta = readReplica({
      name_label: 'x',
      other_config: { [KEYS.datetime]: '20260821T15:31:45Z' },
      blocked_operations: { start: 'Importing…' },
    })
    expect(meta.complete).toBe(false)
  })

  it('falls back to the name date when the datetime key is missing', () => {
    const meta = readReplica({
      name_label: 'web - j - (20260821T153145Z)',
      other_config: {},
      blocked_operations: blocked,
    })
    expect(meta).toMatchObject({ complete: true, datetime: '20260821T15:31:45Z' })
  })

  it('matches ownership by job or schedule, SR and VM', () => {
    const meta = readReplica({
      name_label: 'x',
      other_config: { [KEYS.job]: 'job-1', [KEYS.schedule]: 'sch-1', [KEYS.vm]: 'vm-1', [KEYS.sr]: 'sr-1' },
      blocked_operations: blocked,
    })
    expect(replicaBelongsTo(meta, id, 'sr-1', 'job')).toBe(true)
    expect(replicaBelongsTo(meta, id, 'sr-1', 'schedule')).toBe(true)
    expect(replicaBelongsTo(meta, id, 'sr-2', 'job')).toBe(false)
    expect(replicaBelongsTo(meta, { ...id, vmUuid: 'vm-2' }, 'sr-1', 'job')).toBe(false)
    expect(replicaBelongsTo(meta, { ...id, scheduleId: 'sch-2' }, 'sr-1', 'schedule')).toBe(false)
  })
})
