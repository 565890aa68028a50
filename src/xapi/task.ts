/** Tasks: create one to track an HTTP transfer, watch it, read its outcome, clean it up. */
import type { XapiClient } from './client.js'
import { taskOutcome } from './task-outcome.js'
import type { Ref, TaskRecord } from './types.js'

export { taskOutcome } from './task-outcome.js'
export { parseTaskResult } from './task-result.js'

/** `task.create(label, description)`: a pending task owned by this session. */
export function createTask(
  client: XapiClient,
  label: string,
  description = '',
  options: { signal?: AbortSignal } = {},
): Promise<Ref<'task'>> {
  return client.call<Ref<'task'>>('task.create', [label, description], options)
}

/** Asks XAPI to cancel the task; the operation in it fails later with `TASK_CANCELLED`. */
export async function cancelTask(client: XapiClient, task: Ref<'task'>): Promise<void> {
  await client.call('task.cancel', [task])
}

/** Removes a settled task (on a pending one XAPI only records the request). */
export async function destroyTask(client: XapiClient, task: Ref<'task'>): Promise<void> {
  await client.call('task.destroy', [task])
}

/** The task's record once it has left `pending`. */
export function watchTask(
  client: XapiClient,
  task: Ref<'task'>,
  options: { signal?: AbortSignal } = {},
): Promise<TaskRecord> {
  return client.watchTask(task, options)
}

/** Waits for the task and returns its parsed result, or throws the `XapiError` it failed with. */
export async function awaitTask(
  client: XapiClient,
  task: Ref<'task'>,
  method: string,
  options: { signal?: AbortSignal } = {},
): Promise<unknown> {
  return taskOutcome(await client.watchTask(task, options), method)
}

/**
 * The transfer task's outcome, watched only from the first time it is asked for (the last byte
 * went through, or the transfer failed): the host moves a transfer task's progress as the bytes
 * go, and a watch from the start woke for every step (about 200 `event.from` answers per disk).
 */
export function watchLater(
  client: XapiClient,
  task: Ref<'task'>,
  options: { signal?: AbortSignal },
): () => Promise<TaskRecord> {
  let watching: Promise<TaskRecord> | undefined
  return () => {
    if (watching === undefined) {
      watching = client.watchTask(task, options)
      watching.catch(() => undefined)
    }
    return watching
  }
}
