import type { ChalkInstance } from 'chalk'
import { formatBytes } from '../../jobs/rate.js'
import type { FailbackEvent, FailbackReportEvent, FailbackVmResult } from '../../recovery/failback-events.js'
import type { FailbackEntry } from '../../recovery/failback-plan.js'
import { table, type FormattersOf } from './formatter.js'

/** The events of `xen-cr failback` (its `warning` is the diagnostic one, its `disk-progress` the pass's). */
export type FailbackCommandEvent = Exclude<FailbackEvent, { kind: 'warning' | 'disk-progress' }> | FailbackReportEvent

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`

function describeEntry(entry: FailbackEntry, style: ChalkInstance): string[] {
  const label = `${entry.failedOver.name} (${entry.failedOver.uuid})`
  if (entry.status === 'refused') return [`${style.red('✗')} ${label}: refused: ${entry.message} [${entry.code}]`]
  const into =
    entry.mode === 'in-place'
      ? `into the disks of the original VM ${entry.name} (${entry.original?.uuid ?? '?'})`
      : `onto clones of the base snapshot's disks, as the new VM "${entry.name}"`
  return [
    `${style.bold(label)}: would send the blocks written since the replica of ${entry.replica.datetime} ${into}`,
    `  replica ${entry.replica.name} (${entry.replica.uuid}); base snapshot ${entry.base.name} (${entry.base.uuid}) on the source pool`,
    ...entry.disks.map(d =>
      d.delta === undefined
        ? `  disk ${d.userdevice} ${d.failedOver.name}: full (added after failover)`
        : `  disk ${d.userdevice} ${d.failedOver.name}: delta against replica disk ${d.delta.replica.uuid}, onto ${entry.mode === 'in-place' ? `disk ${d.delta.original?.uuid ?? '?'}` : `a clone of ${d.delta.base.uuid}`}`,
    ),
  ]
}

function describeResult(result: FailbackVmResult, style: ChalkInstance): string {
  switch (result.status) {
    case 'success': {
      const where = result.mode === 'in-place' ? 'in place' : 'new VM'
      const state = result.started ? 'running' : 'halted'
      return `${style.green('✓')} ${result.failedOver.name} → ${result.vm.name} (${result.vm.uuid}), ${where}, ${state}: delta of ${formatBytes(result.bytes)} in ${result.disks.length} disk${result.disks.length === 1 ? '' : 's'} in ${seconds(result.durationMs)}`
    }
    case 'failed':
      return `${style.red('✗')} ${result.failedOver.name}: failback failed: ${result.error.message} [${result.error.code}]`
    case 'refused':
      return `${style.red('✗')} ${result.failedOver.name}: refused: ${result.error.message} [${result.error.code}]`
  }
}

export const failbackFormatters: FormattersOf<FailbackCommandEvent> = {
  'failback-start': {
    class: 'info',
    format: e => [
      `job "${e.job.name}": failing back ${e.vms} VM${e.vms === 1 ? '' : 's'} to the source pool, as deltas`,
    ],
  },
  'failback-vm-start': {
    class: 'progress',
    format: e => [
      `${e.failedOver.name}: snapshot, then the blocks written since the replica of ${e.base.datetime} (${e.mode === 'in-place' ? 'in place' : 'new VM'})`,
    ],
    // the key of its disks' progress lines (they carry the failed-over VM), so its end ends them
    live: { key: e => e.failedOver.uuid },
  },
  'failback-vm-done': {
    class: e => (e.result.status === 'success' ? 'outcome' : 'error'),
    format: (e, style) => [describeResult(e.result, style)],
    live: { key: e => e.result.failedOver.uuid, ends: true },
  },
  'failback-plan': {
    class: 'result',
    format: (e, style) =>
      e.plan.entries.length === 0
        ? [`job "${e.job.name}": no failed-over VM to fail back`]
        : [
            `dry run of the failback of job "${e.job.name}"${e.plan.mode === 'in-place' ? ' in place' : ''}; nothing is created or written`,
            ...e.plan.entries.flatMap(entry => describeEntry(entry, style)),
          ],
  },
  'failback-done': {
    class: 'result',
    format: (e, style) => {
      const ok = e.results.filter(r => r.status === 'success')
      const rows = [
        ['FAILED-OVER VM', 'NOW ON SOURCE', 'UUID', 'MODE', 'SENT', 'STATE', 'JOB RESUMES FROM'],
        ...ok.map(r => [
          r.failedOver.name,
          r.vm.name,
          r.vm.uuid,
          r.mode,
          formatBytes(r.bytes),
          r.started ? 'running' : 'halted',
          r.resume.snapshot === undefined ? 'a full copy' : `snapshot ${r.resume.snapshot.uuid}`,
        ]),
      ]
      const bad = e.results.length - ok.length
      const summary = `${ok.length} of ${e.results.length} VMs of job "${e.job.name}" failed back`
      return [
        ...(ok.length === 0 ? [] : table(rows).map((line, i) => (i === 0 ? style.bold(line) : line))),
        ...e.jobVms.map(c => `job "${e.job.name}" now replicates ${c.to} instead of ${c.from}`),
        bad === 0 ? summary : `${summary}, ${style.red(`${bad} not`)}`,
      ]
    },
  },
}
