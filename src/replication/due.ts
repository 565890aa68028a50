/**
 * `run --due`: whether a job should run now, judged only from the datetimes of its replicas on
 * the target (so any controller with the job definition decides the same, with no local state).
 */
import { dueSince, isDue } from '../jobs/schedule.js'
import type { Job, Schedule } from '../jobs/types.js'
import type { XapiClient } from '../xapi/client.js'
import { lastReplicaDates } from './list.js'

export interface DueDecision {
  readonly schedule: Schedule
  /** newest complete replica of the schedule (its stalest VM/SR); undefined: never ran */
  readonly last: Date | undefined
  readonly due: boolean
  /** when the round due now began ({@link dueSince}): a VM replicated since is this round's */
  readonly since: Date
}

/** One decision per schedule of the job, in the job's order. */
export async function dueSchedules(
  job: Job,
  target: XapiClient,
  now: Date,
  options: { signal?: AbortSignal } = {},
): Promise<DueDecision[]> {
  const vms = await target.getAllRecords('VM', options.signal === undefined ? {} : { signal: options.signal })
  const last = lastReplicaDates(job, vms)
  return job.schedules.map(schedule => {
    const date = last.get(schedule.id)
    return { schedule, last: date, due: isDue(schedule, date, now), since: dueSince(schedule, date, now) }
  })
}
