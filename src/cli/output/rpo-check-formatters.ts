import type { ChalkInstance } from 'chalk'
import type { JobRpoCheck, VmRpoVerdict } from '../../replication/rpo-check.js'
import type { FormattersOf } from './formatter.js'
import type { MonitoringEvent } from './operator-events.js'
import { formatAge } from './replica-list-formatters.js'

function limitOf(job: JobRpoCheck): string {
  const base = job.maxAgeMs === job.rpoMs ? `RPO ${formatAge(job.rpoMs)}` : `max age ${formatAge(job.maxAgeMs)}`
  return `limit ${formatAge(job.maxAgeMs + job.toleranceMs)} = ${base} + tolerance ${formatAge(job.toleranceMs)}`
}

function newestOf(verdict: VmRpoVerdict): string {
  const newest = verdict.newest
  return newest === undefined
    ? 'no complete replica'
    : `newest replica ${newest.name} (${newest.uuid}) of ${newest.datetime} on SR ${newest.srName}`
}

/** One line per VM out of its RPO, and per job that could not be read; nothing when all is well. */
export function formatRpoCheck(event: MonitoringEvent, style: ChalkInstance): string[] {
  const lines: string[] = []
  for (const unknown of event.unknown) {
    lines.push(
      `${style.yellow('unknown')} job "${unknown.job.name}": cannot tell, ${unknown.message} [${unknown.code}]`,
    )
  }
  for (const job of event.jobs) {
    for (const verdict of job.vms) {
      if (verdict.status === 'ok') continue
      const what = `job "${job.job.name}" VM ${verdict.vm.name} (${verdict.vm.uuid})`
      lines.push(
        verdict.status === 'late'
          ? `${style.red('late')} ${what}: ${formatAge(verdict.ageMs)} old, ${limitOf(job)}; ${newestOf(verdict)}`
          : `${style.red('never')} ${what}: ${verdict.newest === undefined ? 'no complete replica yet' : `no complete replica on every SR of the job; ${newestOf(verdict)}`}`,
      )
    }
  }
  return lines
}

/** `xen-cr list --check`. */
export const rpoCheckFormatters: FormattersOf<MonitoringEvent> = {
  'rpo-check': { class: 'result', format: formatRpoCheck },
}
