import type { DueJobOutcome, RunCommandEvent } from './events.js'
import type { FormattersOf } from './formatter.js'

function describeOutcome(job: DueJobOutcome): string {
  switch (job.status) {
    case 'ok': {
      const skipped = job.vms.filter(vm => vm.status === 'skipped').length
      return `${job.name} ok (${job.vms.length - skipped} VMs${skipped === 0 ? '' : `, ${skipped} another run's`})`
    }
    case 'failed':
      return `${job.name} failed (${job.vms.filter(vm => vm.status === 'failed').length} of ${job.vms.length} VMs)`
    case 'leased':
      return job.vms.length === 0
        ? `${job.name} running elsewhere, nothing done`
        : `${job.name} running elsewhere, nothing done (${job.vms.length} VMs another run's)`
    case 'not-due':
      return `${job.name} not due`
    case 'disabled':
      return `${job.name} disabled`
    case 'error':
      return `${job.name} did not run [${job.code ?? 'ERROR'}]`
  }
}

/** `run --due`'s closing line: one word per job, so a cron mail says which job needs a look. */
export const runFormatters: FormattersOf<RunCommandEvent> = {
  'run-due-done': {
    class: 'outcome',
    format: event =>
      event.jobs.length === 0
        ? ['run --due: no jobs in the job store']
        : [`run --due: ${event.jobs.map(describeOutcome).join('; ')}`],
  },
}
