import type { FormattersOf } from './formatter.js'
import type { JobEditEvent } from './operator-events.js'

/** `xen-cr job edit`: each changed setting, before and after (ASCII, for logs too). */
export const jobEditFormatters: FormattersOf<JobEditEvent> = {
  'job-edited': {
    class: 'result',
    format: event =>
      event.changes.length === 0
        ? [`job "${event.job.name}" (${event.job.id}): nothing changed`]
        : [
            `job "${event.job.name}" (${event.job.id}) saved:`,
            ...event.changes.map(change => `  ${change.setting}: ${change.from} -> ${change.to}`),
            `crontab: ${event.crontab}`,
          ],
  },
}
