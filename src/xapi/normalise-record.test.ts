import { describe, expect, it } from 'vitest'
import { formatXapiDateTime, normaliseRecord, normaliseValue } from './normalise-record.js'

describe('normaliseRecord', () => {
  it('turns XML-RPC bare-string ints into numbers and Dates into XAPI datetimes', () => {
    // Over XML-RPC XAPI sends <value>10737418240</value> for an int and the client parses
    // dateTime.iso8601 into a Date; over JSON-RPC both arrive as number / string already.
    const vdi = normaliseRecord('VDI', {
      uuid: 'u',
      virtual_size: '10737418240',
      physical_utilisation: 2097152,
      snapshot_time: new Date(Date.UTC(2024, 10, 3, 10, 20, 30)),
      other_config: { 'xo:backup:datetime': '20241103T10:20:30Z' },
    })
    expect(vdi.virtual_size).toBe(10737418240)
    expect(vdi.physical_utilisation).toBe(2097152)
    expect(vdi.snapshot_time).toBe('20241103T10:20:30Z')
    expect(vdi.other_config['xo:backup:datetime']).toBe('20241103T10:20:30Z')
    expect(Object.isFrozen(vdi)).toBe(true)
  })

  it('leaves string fields that look like numbers alone', () => {
    const vbd = normaliseRecord('VBD', { userdevice: '0', status_code: '0' })
    expect(vbd.userdevice).toBe('0')
    expect(vbd.status_code).toBe(0)
  })
})

describe('formatXapiDateTime', () => {
  it('prints the epoch as XAPI does for "never"', () => {
    expect(formatXapiDateTime(new Date(0))).toBe('19700101T00:00:00Z')
    expect(normaliseValue([new Date(0)])).toEqual(['19700101T00:00:00Z'])
  })
})
