import type { ChalkInstance } from 'chalk'
import type { FailoverEvent, FailoverVmResult, RecoveryReportEvent, ReplicaInfo } from '../../recovery/events.js'
import type { FailoverEntry } from '../../recovery/failover-plan.js'
import type { SourceVm } from '../../recovery/job-replicas.js'
import { table, type FormattersOf } from './formatter.js'
import { formatAge } from './replica-list-formatters.js'

/** The events of `xen-cr failover` and `xen-cr replicas` (failover's `warning` is the diagnostic one). */
export type RecoveryCommandEvent = Exclude<FailoverEvent, { kind: 'warning' }> | RecoveryReportEvent

const vmLabel = (vm: SourceVm): string =>
  vm.uuid === undefined || vm.uuid === vm.name ? vm.name : `${vm.name} (${vm.uuid})`

const fromReplica = (r: ReplicaInfo): string =>
  `replica of ${r.datetime ?? '?'} (${formatAge(r.ageMs)} old) on SR ${r.srName}`

function describeEntry(entry: FailoverEntry, style: ChalkInstance): string[] {
  if (entry.status === 'refused')
    return [`${style.red('✗')} ${vmLabel(entry.vm)}: refused: ${entry.message} [${entry.code}]`]
  const r = entry.replica
  return [
    `${style.bold(vmLabel(entry.vm))}: would clone the ${fromReplica(r)} into "${entry.name}"`,
    `  replica ${r.name} (${r.uuid}), start order ${r.order}, start delay ${r.startDelay}s`,
  ]
}

function describeResult(result: FailoverVmResult, style: ChalkInstance): string {
  switch (result.status) {
    case 'success':
      return `${style.green('✓')} ${result.vm.name}: ${result.failoverVm.name} (${result.failoverVm.uuid}) ${result.started ? 'running' : 'halted'}, from the ${fromReplica(result.replica)}${result.via === 'copy' ? ', copied' : ''}`
    case 'failed':
      return `${style.red('✗')} ${result.vm.name}: failover from the ${fromReplica(result.replica)} failed: ${result.error.message} [${result.error.code}]`
    case 'refused':
      return `${style.red('✗')} ${result.vm.name}: refused: ${result.error.message} [${result.error.code}]`
  }
}

function yesNo(value: boolean): string {
  return value ? 'yes' : 'no'
}

export const recoveryFormatters: FormattersOf<RecoveryCommandEvent> = {
  'failover-start': {
    class: 'info',
    format: e => [`job "${e.job.name}": failing over ${e.vms} VM${e.vms === 1 ? '' : 's'} on the target pool`],
  },
  'failover-vm-start': {
    class: 'progress',
    format: e => [`${e.vm.name}: cloning the ${fromReplica(e.replica)}`],
    live: { key: e => `failover-${e.vm.uuid ?? e.vm.name}` },
  },
  'failover-vm-done': {
    class: e => (e.result.status === 'success' ? 'info' : 'error'),
    format: (e, style) => [describeResult(e.result, style)],
    live: { key: e => `failover-${e.result.vm.uuid ?? e.result.vm.name}`, ends: true },
  },
  'failover-wait': {
    class: 'info',
    format: e => [
      `waiting ${Math.round(e.delayMs / 1000)}s (start delay of order ${e.afterOrder}) before the next VMs`,
    ],
  },
  'failover-plan': {
    class: 'result',
    format: (e, style) =>
      e.plan.entries.length === 0
        ? [`job "${e.job.name}": no VM to fail over`]
        : [
            `dry run of the failover of job "${e.job.name}"${e.plan.at === undefined ? '' : ` at ${e.plan.at.toISOString()}`}; nothing is created`,
            ...e.plan.entries.flatMap(entry => describeEntry(entry, style)),
          ],
  },
  'failover-done': {
    class: 'result',
    format: (e, style) => {
      const ok = e.results.filter(r => r.status === 'success')
      const rows = [
        ['VM', 'FAILOVER VM', 'UUID', 'STATE', 'REPLICA DATETIME', 'AGE'],
        ...ok.map(r => [
          r.vm.name,
          r.failoverVm.name,
          r.failoverVm.uuid,
          r.started ? 'running' : 'halted',
          r.replica.datetime ?? '?',
          formatAge(r.replica.ageMs),
        ]),
      ]
      const bad = e.results.length - ok.length
      const summary = `${ok.length} of ${e.results.length} VMs of job "${e.job.name}" failed over`
      return [
        ...(ok.length === 0 ? [] : table(rows).map((line, i) => (i === 0 ? style.bold(line) : line))),
        bad === 0 ? summary : `${summary}, ${style.red(`${bad} not`)}`,
      ]
    },
  },
  'job-replicas': {
    class: 'result',
    format: (e, style) => {
      if (e.vms.length === 0) return [`job "${e.job.name}" has no replica on the target pool`]
      return e.vms.flatMap((group, index) => {
        const rows = [
          ['UUID', 'DATETIME', 'AGE', 'PROTECTED', 'COMPLETE', 'CHAIN', 'STATE', 'SR'],
          ...group.replicas.map(r => [
            r.uuid,
            r.datetime ?? 'importing',
            formatAge(r.ageMs),
            yesNo(r.protected),
            yesNo(r.complete),
            r.chain,
            r.started ? style.yellow(r.powerState === 'Halted' ? 'unblocked' : r.powerState.toLowerCase()) : 'halted',
            r.srName,
          ]),
        ]
        return [
          ...(index === 0 ? [] : ['']),
          `${style.bold(vmLabel(group.vm))}: ${group.replicas.length} replica${group.replicas.length === 1 ? '' : 's'}`,
          ...(group.replicas.length === 0
            ? []
            : table(rows).map((line, i) => `  ${i === 0 ? style.bold(line) : line}`)),
        ]
      })
    },
  },
  'deletion-plan': {
    class: 'result',
    format: (e, style) => {
      const count = (side: 'target' | 'source'): number => e.delete.filter(i => i.side === side).length
      return [
        ...e.delete.map(
          i =>
            `delete ${i.what} ${i.name} (${i.uuid}) of ${i.vm.name}${i.datetime === undefined ? '' : `, ${i.datetime}`}`,
        ),
        ...e.keep.map(i => `${style.yellow('keep')} ${i.what} ${i.name} (${i.uuid}): ${i.reason}`),
        e.delete.length === 0
          ? `job "${e.job.name}": nothing to delete`
          : `job "${e.job.name}": ${count('target')} replica(s) on the target pool and ${count('source')} snapshot(s) on the source pool to delete, with their disks`,
      ]
    },
  },
  deleted: {
    class: 'info',
    format: e => [`deleted ${e.item.what} ${e.item.name} (${e.item.uuid})`],
  },
  'deletion-done': {
    class: 'result',
    format: (e, style) => [
      `job "${e.job.name}": ${e.deleted} object(s) deleted${e.failed === 0 ? '' : `, ${style.red(`${e.failed} failed`)}`}`,
    ],
  },
}
