import type { ChalkInstance } from 'chalk'
import { formatBytes } from '../../jobs/rate.js'
import type { PassEvent, ReplicationReportEvent } from '../../replication/events.js'
import { PLACEHOLDER_DATETIME } from '../../replication/metadata.js'
import type { ReplicaRef, VmPlan } from '../../replication/plan.js'
import { VHD_BLOCK_SIZE } from '../../vhd/layout.js'
import type { FormattersOf } from './formatter.js'
import { formatDuration, passSummary } from './pass-summary.js'

type PassPlanEvent = Extract<ReplicationReportEvent, { kind: 'pass-plan' }>
type DiskProgressEvent = Extract<PassEvent, { kind: 'disk-progress' }>

/**
 * A delta VHD carries every changed block whole (2 MiB and its bitmap), so one shorter than a
 * block has none: it is the footer, header and block table that tell the target "nothing
 * changed". Said in words, since a few KiB sent for a disk nobody wrote looks like a leak.
 */
function unchangedNote(event: DiskProgressEvent): string | undefined {
  const { total } = event
  return event.mode === 'delta' && total !== undefined && event.bytes >= total && total < VHD_BLOCK_SIZE
    ? 'no block changed (only the VHD header and block table)'
    : undefined
}

function diskProgressLine(event: DiskProgressEvent): string {
  const { bytes, total } = event
  const amount =
    total === undefined
      ? formatBytes(bytes)
      : `${formatBytes(bytes)} of ${formatBytes(total)} (${Math.floor((Math.min(bytes, total) / Math.max(1, total)) * 100)} %)`
  const note = unchangedNote(event)
  return `${event.vm.name}: disk ${event.disk.userdevice} ${event.mode}, ${amount}${note === undefined ? '' : `: ${note}`}`
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
    format: event => [diskProgressLine(event)],
    live: {
      // under its VM's key, so that the VM's end ends its disks' lines too
      key: event => `${event.vm.uuid}/${event.srUuid}/${event.disk.userdevice}`,
      // a log gets a line per 10 % of the stream (per GiB while its length is unknown)
      milestone: event =>
        event.total === undefined
          ? -1 - Math.floor(event.bytes / 1024 ** 3)
          : Math.floor((Math.min(event.bytes, event.total) / Math.max(1, event.total)) * 10),
      transfer: event => {
        const note = unchangedNote(event)
        return {
          label: `${event.vm.name} disk ${event.disk.userdevice} ${event.mode}`,
          bytes: event.bytes,
          ...(event.total === undefined ? {} : { total: event.total }),
          ...(note === undefined ? {} : { note }),
        }
      },
    },
  },
  'vm-done': {
    class: event => (event.result.status === 'failed' ? 'error' : 'outcome'),
    format: (event, style) =>
      event.result.status === 'success'
        ? [
            `${style.green('✓')} ${event.result.vm.name}: ${event.result.mode}, ${formatBytes(event.result.bytes)} sent in ${formatDuration(event.result.durationMs)}`,
          ]
        : event.result.status === 'skipped'
          ? [`${style.yellow('-')} ${event.result.vm.name}: skipped, ${event.result.message}`]
          : [`${style.red('✗')} ${event.result.vm.name}: ${event.result.error.message} [${event.result.error.code}]`],
    live: { key: event => event.result.vm.uuid, ends: true },
  },
  'pass-done': {
    class: 'outcome',
    closesProgress: true,
    format: (event, style, context) => {
      const failed = event.results.filter(result => result.status === 'failed').length
      const skipped = event.results.filter(result => result.status === 'skipped').length
      const replicated = event.results.length - failed - skipped
      const summary = `${replicated} of ${event.results.length} VMs replicated${skipped === 0 ? '' : `, ${skipped} skipped (another run's)`}`
      // --quiet keeps the per-VM lines, which already say what the table would
      return [
        ...(context.quiet ? [] : passSummary(event.results, style, context)),
        failed === 0 ? summary : `${summary}, ${style.red(`${failed} failed`)}`,
      ]
    },
  },
  'pass-plan': { class: 'result', format: formatPassPlan },
}
