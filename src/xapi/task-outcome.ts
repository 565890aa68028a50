import { OperationError, XapiError } from '../errors.js'
import { parseTaskResult } from './task-result.js'
import type { TaskRecord } from './types.js'

/**
 * What a settled task means: its parsed result on success, else the `XapiError` of its
 * `error_info` (a cancelled task is `TASK_CANCELLED [taskRef]`, as XAPI reports it), with
 * `method` naming what ran in it.
 */
export function taskOutcome(record: TaskRecord, method: string): unknown {
  switch (record.status) {
    case 'success':
      return parseTaskResult(record.result)
    case 'failure':
    case 'cancelled': {
      const [code, ...params] = record.error_info
      if (code !== undefined) throw new XapiError(code, params, method)
      throw new XapiError(record.status === 'cancelled' ? 'TASK_CANCELLED' : 'INTERNAL_ERROR', [], method)
    }
    default:
      throw new OperationError('TASK_NOT_SETTLED', `task ${record.uuid} for ${method} is still ${record.status}`)
  }
}
