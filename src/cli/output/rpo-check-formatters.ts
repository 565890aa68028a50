import type { ChalkInstance } from 'chalk'
import type { JobRpoCheck, VmRpoVerdict } from '../../replication/rpo-check.js'
import type { FormattersOf } from './formatter.js'
import type { MonitoringEvent } from './operator-events.js'

/**
 * A limit to the second, unlike an age (`2m12s`, `1h05m`, `1h`): the sum must read as the sum of
 * its parts. Zeros are left out only at the end.
 */
export function formatSpan(ms: number): string {
  const total = Math.round(ms / 1000)
  const units: [number, string][] = [
    [Math.floor(total / 86_400), 'd'],
    [Math.floor((total % 86_400) / 3600), 'h'],
    [Math.floor((total % 3600) / 60), 'm'],
    [total % 60, 's'],
  ]
  const first = units.findIndex(([value]) => value > 0)
  if (first < 0) return '0s'
  let last = units.length - 1
  while (units[last]![0] === 0) last--
  return units
    .slice(first, last + 1)
    .map(([value, unit], index) => `${index === 0 ? value : String(value).padStart(2, '0')}${unit}`)
    .join('')
}

function limitOf(job: JobRpoCheck): string {
  const base = job.maxAgeMs === job.rpoMs ? `RPO ${formatSpan(job.rpoMs)}` : `max age ${formatSpan(job.maxAgeMs)}`
  return `limit ${formatSpan(job.maxAgeMs + job.toleranceMs)} = ${base} + tolerance ${formatSpan(job.toleranceMs)}`
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
          ? `${style.red('late')} ${what}: ${verdict.ageMs === undefined ? '-' : formatSpan(verdict.ageMs)} old, ${limitOf(job)}; ${newestOf(verdict)}`
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
