/** Fault arming: `nth` fires exactly once on that matching call, no `nth` fires every time. */
import { describe, expect, it } from 'vitest'
import { FaultTable, validateFault } from './faults.js'

describe('FaultTable', () => {
  it('fires an nth fault once, on the nth matching call only', () => {
    const table = new FaultTable()
    table.add({ kind: 'error', method: 'VM.snapshot', code: 'X', params: ['p'], nth: 2 })
    expect(table.planCall('VM.clone').then).toBeUndefined()
    expect(table.planCall('VM.snapshot').then).toBeUndefined()
    expect(table.planCall('VM.snapshot').then).toEqual({ action: 'error', code: 'X', params: ['p'] })
    expect(table.planCall('VM.snapshot').then).toBeUndefined()
    expect(table.list()).toEqual([])
  })

  it('adds up latencies, fires always-faults every time and hands out data-path faults per VDI', () => {
    const table = new FaultTable()
    table.add({ kind: 'latency', ms: 5 })
    table.add({ kind: 'latency', method: 'VM.get_all', ms: 7 })
    table.add({ kind: 'drop', method: 'VM.get_all' })
    expect(table.planCall('VM.get_all')).toEqual({ delayMs: 12, then: { action: 'drop' } })
    expect(table.planCall('VM.get_all')).toEqual({ delayMs: 12, then: { action: 'drop' } })
    expect(table.planCall('pool.get_all')).toEqual({ delayMs: 5, then: undefined })
    table.add({ kind: 'data-path', direction: 'import', vdi: 'u1', cutAfterBytes: 10, nth: 1 })
    expect(table.takeDataPathFault('export', 'u1')).toBeUndefined()
    expect(table.takeDataPathFault('import', 'u2')).toBeUndefined()
    expect(table.takeDataPathFault('import', 'u1')).toEqual({ cutAfterBytes: 10 })
    expect(table.takeDataPathFault('import', 'u1')).toBeUndefined()
    table.clear()
    expect(table.planCall('VM.get_all')).toEqual({ delayMs: 0, then: undefined })
  })

  it('counts a transfer against every data-path fault, so nth faults 2, 3 and 4 cut transfers 2, 3 and 4', () => {
    const table = new FaultTable()
    for (const nth of [2, 3, 4]) table.add({ kind: 'data-path', direction: 'import', cutAfterBytes: nth, nth })
    expect(table.takeDataPathFault('import', 'u1')).toBeUndefined()
    expect(table.takeDataPathFault('import', 'u2')).toEqual({ cutAfterBytes: 2 })
    expect(table.takeDataPathFault('import', 'u2')).toEqual({ cutAfterBytes: 3 })
    expect(table.takeDataPathFault('import', 'u2')).toEqual({ cutAfterBytes: 4 })
    expect(table.takeDataPathFault('import', 'u2')).toBeUndefined()
    expect(table.list()).toEqual([])
  })

  it('counts the calls of each method, faulted or not, until reset', () => {
    const table = new FaultTable()
    table.add({ kind: 'drop', method: 'VM.get_all', nth: 1 })
    table.planCall('VM.get_all')
    table.planCall('VM.get_all')
    table.planCall('VDI.clone')
    expect(table.callCounts()).toEqual({ 'VM.get_all': 2, 'VDI.clone': 1 })
    table.resetCallCounts()
    expect(table.callCounts()).toEqual({})
  })

  it('rejects malformed faults with a message naming the problem', () => {
    expect(() => validateFault({ kind: 'error', method: 'VM.start' })).toThrow(/method and code/)
    expect(() => validateFault({ kind: 'latency', ms: 1, nth: 0 })).toThrow(/nth/)
    expect(() => validateFault({ kind: 'boom' })).toThrow(/kind/)
  })
})
