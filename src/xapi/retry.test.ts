/**
 * The retry rule: what may be sent again. Without it a lost answer to VM.snapshot or VDI.clone
 * would be retried into a duplicate nobody owns, or a transient reset would fail a whole VM.
 */
import { describe, expect, it } from 'vitest'
import { AbortedError, ConnectionError, OperationError, XapiError } from '../errors.js'
import {
  RetryBudget,
  backoffMs,
  classifyCallFailure,
  classifyTransferFailure,
  isIdempotent,
  mayRetryCall,
} from './retry.js'

const socketError = (code: string): Error => Object.assign(new Error(code), { code })
const xenApiError = (code: string): unknown => ({ code, params: [] })

describe('classifyCallFailure', () => {
  it.each([
    ['connection refused', socketError('ECONNREFUSED'), 'not-applied'],
    [
      'undici connect timeout, nested in cause',
      new Error('fetch', { cause: socketError('UND_ERR_CONNECT_TIMEOUT') }),
      'not-applied',
    ],
    ['SESSION_INVALID', xenApiError('SESSION_INVALID'), 'not-applied'],
    ['TOO_MANY_PENDING_TASKS', xenApiError('TOO_MANY_PENDING_TASKS'), 'not-applied'],
    ['HOST_IS_SLAVE', xenApiError('HOST_IS_SLAVE'), 'not-applied'],
    ["xen-api's missing-session assertion", socketError('ERR_ASSERTION'), 'not-applied'],
    ['connection reset', socketError('ECONNRESET'), 'unknown'],
    ['undici socket closed', socketError('UND_ERR_SOCKET'), 'unknown'],
    ['socket hang up', new Error('socket hang up'), 'unknown'],
    ['HTTP 503', new Error('unexpected statusCode 503'), 'unknown'],
    ['call timeout', new OperationError('CALL_TIMEOUT', 'x'), 'unknown'],
    ['HTTP 404', new Error('unexpected statusCode 404'), 'logical'],
    ['HANDLE_INVALID', xenApiError('HANDLE_INVALID'), 'logical'],
    ['MAP_DUPLICATE_KEY', xenApiError('MAP_DUPLICATE_KEY'), 'logical'],
    ['VM_BAD_POWER_STATE', xenApiError('VM_BAD_POWER_STATE'), 'logical'],
    ['SR_FULL', new XapiError('SR_FULL', ['1', '2'], 'VDI.create'), 'logical'],
    ['an abort', new AbortedError(), 'logical'],
  ] as const)('%s is %s', (_name, error, kind) => {
    expect(classifyCallFailure(error)).toBe(kind)
  })
})

describe('mayRetryCall', () => {
  it('retries a non-idempotent call only when it provably did not run', () => {
    for (const method of [
      'VM.snapshot',
      'Async.VM.snapshot',
      'VDI.clone',
      'VM.create',
      'VBD.create',
      'VM.add_to_other_config',
      'VDI.destroy',
    ]) {
      expect(isIdempotent(method)).toBe(false)
      expect(mayRetryCall(method, 'not-applied')).toBe(true)
      expect(mayRetryCall(method, 'unknown')).toBe(false)
    }
    for (const method of [
      'VM.get_record',
      'VDI.get_all_records',
      'event.from',
      'VM.set_name_label',
      'VM.remove_from_other_config',
      'Async.VM.get_record',
    ]) {
      expect(isIdempotent(method)).toBe(true)
      expect(mayRetryCall(method, 'unknown')).toBe(true)
    }
    expect(mayRetryCall('VM.get_record', 'logical')).toBe(false)
  })
})

describe('classifyTransferFailure', () => {
  it('restarts a disk on a cut stream or a lost host, never on a refusal', () => {
    expect(classifyTransferFailure(new OperationError('TRANSFER_INTERRUPTED', 'cut'))).toBe('unknown')
    expect(classifyTransferFailure(new OperationError('TRANSFER_HTTP_STATUS', 'x answered HTTP 502; y'))).toBe(
      'unknown',
    )
    expect(classifyTransferFailure(new OperationError('TRANSFER_HTTP_STATUS', 'x answered HTTP 403; y'))).toBe(
      'logical',
    )
    expect(classifyTransferFailure(new ConnectionError('POOL_UNREACHABLE', 'x'))).toBe('unknown')
    expect(classifyTransferFailure(new ConnectionError('POOL_TLS', 'x'))).toBe('logical')
    expect(classifyTransferFailure(new XapiError('SR_FULL', [], 'import'))).toBe('logical')
    expect(classifyTransferFailure(new XapiError('VDI_IO_ERROR', ['short body'], 'import'))).toBe('unknown')
    expect(classifyTransferFailure(new XapiError('TOO_MANY_PENDING_TASKS', [], 'import'))).toBe('not-applied')
    expect(classifyTransferFailure(new AbortedError())).toBe('logical')
  })
})

describe('backoff', () => {
  it('is full jitter under a doubling, capped ceiling', () => {
    const policy = { attempts: 10, baseMs: 100, capMs: 1_000, totalMs: 60_000 }
    expect([0, 1, 2, 3, 4, 9].map(n => backoffMs(n, policy, () => 0.999_999))).toEqual([99, 199, 399, 799, 999, 999])
    expect(backoffMs(3, policy, () => 0)).toBe(0)
  })

  it('a budget stops at its attempt count and rejects when aborted', async () => {
    const budget = new RetryBudget({ attempts: 3, baseMs: 1, capMs: 1, totalMs: 60_000 })
    expect(await budget.next()).toBe(true)
    expect(await budget.next()).toBe(true)
    expect(await budget.next()).toBe(false)
    expect(budget.attempts).toBe(3)
    const aborted = new RetryBudget({ attempts: 3, baseMs: 1, capMs: 1, totalMs: 60_000 })
    await expect(aborted.next(AbortSignal.abort())).rejects.toBeInstanceOf(AbortedError)
  })
})
