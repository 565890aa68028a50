import type { ChalkInstance } from 'chalk'
import { formatBytes } from '../../jobs/rate.js'
import type { PassEvent, ReplicationReportEvent } from '../../replication/events.js'
import { PLACEHOLDER_DATETIME } from '../../replication/metadata.js'
import type { ReplicaRef, VmPlan } from '../../replication/plan.js'
import type { FormattersOf } from './formatter.js'

type PassPlanEvent = Extract<ReplicationReportEvent, { kind: 'pass-plan' }>

function formatDuration(milliseconds: number): string {
  const seconds = Math.round(milliseconds / 1000)
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`
}

/** A replica the pass would delete, named so that it can be checked first; an interrupted pass left no datetime. */
function replicaLine(replica: ReplicaRef): string {
  const interrupted = replica.datetime === undefined || replica.datetime === PLACEHOLDER_DATETIME
  return `    replica ${replica.name} (${replica.uuid}), ${interrupted ? 'left by an interrupted pass' : `of ${replica.datetime}`}`
}

function describeDisks(plan: VmPlan): string[] {
  return plan.targets.flatMap(t => {
    const disks = t.disks
      .map(d => `disk ${d.userdevice} ${d.mode}${d.reason === undefined ? '' : ` (${d.reason})`}`)
      .join(', ')
    const deletions =
      t.deleteReplicas.length === 0
        ? ''
        : `; then delete ${t.deleteReplicas.length} old replica${t.deleteReplicas.length === 1 ? '' : 's'}`
    return [`  SR ${t.sr.name}: ${disks || 'no disks'}${deletions}`, ...t.deleteReplicas.map(replicaLine)]
  })
}

/** Lines of a dry run's plan. */
export function formatPassPlan(event: PassPlanEvent, style: ChalkInstance): string[] {
  if (event.plans.length === 0) return [`job "${event.job.name}": nothing to replicate`]
  return event.plans.flatMap(plan => [
    `${style.bold(plan.vm.name)} (${plan.vm.uuid}): ${plan.mode}${
      plan.base === undefined
        ? ''
        : ` from snapshot ${plan.base.datetime} (era ${plan.base.era}, chain ${plan.base.deltaChainLength})`
    }`,
    ...describeDisks(plan),
    ...(plan.deleteSnapshots.length === 0
      ? []
      : [
          `  then delete ${plan.deleteSnapshots.length} older source snapshot${plan.deleteSnapshots.length === 1 ? '' : 's'}`,
          ...plan.deleteSnapshots.map(snapshot => `    snapshot ${snapshot.name} (${snapshot.uuid})`),
        ]),
    ...plan.warnings.map(w => `  ${style.yellow('warning')} ${w.message} [${w.code}]`),
  ])
}

/** `xen-cr run`: the pass engine's events (its `warning` is the diagnostic one) and a dry run's plan. */
export const passFormatters: FormattersOf<Exclude<PassEvent, { kind: 'warning' }> | PassPlanEvent> = {
  'pass-start': {
    class: 'info',
    format: event => [
      `job "${event.job.name}": ${event.vms} VM${event.vms === 1 ? '' : 's'} (schedule ${event.scheduleId})`,
    ],
  },
  'vm-start': {
    class: 'progress',
    format: event => [
      `${event.vm.name}: ${event.plan.mode}${event.plan.base === undefined ? '' : ' from the previous replica'}`,
    ],
    live: { key: event => event.vm.uuid },
  },
  'disk-progress': {
    class: 'progress',
    format: event => [
      `${event.vm.name}: disk ${event.disk.userdevice} ${event.mode} ${formatBytes(event.bytes)}${
        event.virtualSize > 0 && event.mode === 'full'
          ? ` of ${formatBytes(event.virtualSize)} (${Math.floor((event.bytes / event.virtualSize) * 100)} %)`
          : ''
      }`,
    ],
    live: {
      key: event => event.vm.uuid,
      // a plain log gets a line per GiB sent per disk, not one per chunk
      milestone: event => Math.floor(event.bytes / 1024 ** 3) * 1000 + Number.parseInt(event.disk.userdevice, 10),
    },
  },
  'vm-done': {
    class: event => (event.result.status === 'success' ? 'info' : 'error'),
    format: (event, style) =>
      event.result.status === 'success'
        ? [
            `${style.green('✓')} ${event.result.vm.name}: ${event.result.mode}, ${formatBytes(event.result.bytes)} sent in ${formatDuration(event.result.durationMs)}`,
          ]
        : [`${style.red('✗')} ${event.result.vm.name}: ${event.result.error.message} [${event.result.error.code}]`],
    live: { key: event => event.result.vm.uuid, ends: true },
  },
  'pass-done': {
    class: 'result',
    format: (event, style) => {
      const failed = event.results.filter(result => result.status === 'failed').length
      const summary = `${event.results.length - failed} of ${event.results.length} VMs replicated`
      return [failed === 0 ? summary : `${summary}, ${style.red(`${failed} failed`)}`]
    },
  },
  'pass-plan': { class: 'result', format: formatPassPlan },
}
