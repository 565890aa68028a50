import type { ChalkInstance } from 'chalk'
import { formatBytes } from '../../jobs/rate.js'
import type {
  DiskComparison,
  HealthCheckEvent,
  HealthCheckStep,
  HealthCheckVmResult,
  SideRead,
  VerifyEvent,
  VerifyVmResult,
} from '../../recovery/check-events.js'
import { formatBudget } from '../../recovery/await-guest.js'
import type { SourceVm } from '../../recovery/job-replicas.js'
import { table, type FormattersOf } from './formatter.js'

/** The events of `xen-cr verify` and `xen-cr health-check` (their `warning` is the diagnostic one). */
export type CheckCommandEvent =
  Exclude<VerifyEvent, { kind: 'warning' }> | Exclude<HealthCheckEvent, { kind: 'warning' }>

const vmKey = (vm: SourceVm): string => vm.uuid ?? vm.name

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

function sideRead(read: SideRead): string {
  return `${formatBytes(read.bytes)} ${read.via === 'nbd' ? 'over NBD' : 'streamed'}`
}

function describeDisk(disk: DiskComparison, style: ChalkInstance): string {
  const what = `disk ${disk.userdevice} (${disk.replicaDisk.name})`
  const reads = `read: source ${sideRead(disk.source)}, target ${sideRead(disk.target)}`
  if (disk.sizeDiffers === true)
    return `${style.red('✗')} ${what}: its virtual size differs from snapshot disk ${disk.snapshotDisk.name}'s`
  if (disk.equal)
    return `${style.green('✓')} ${what}: equal, ${plural(disk.blocksCompared, disk.mode === 'sample' ? 'sampled block' : 'block')} compared (${reads})`
  const at = disk.firstDifference
  const more =
    disk.differingBlocks === undefined
      ? ''
      : `, ${disk.differingBlocks} of ${disk.blocksCompared} sampled blocks differ`
  return `${style.red('✗')} ${what}: differs${at === undefined ? '' : ` first at block ${at.block} (byte ${at.offset})`}${more} (${reads})`
}

function describeVerify(result: VerifyVmResult, style: ChalkInstance): string {
  switch (result.status) {
    case 'equal':
      return `${style.green('✓')} ${result.vm.name}: the replica of ${result.replica.datetime ?? '?'} equals its base snapshot (${plural(result.disks.length, 'disk')})`
    case 'different':
      return `${style.red('✗')} ${result.vm.name}: the replica of ${result.replica.datetime ?? '?'} differs from its base snapshot: ${result.error?.message ?? ''} [${result.error?.code ?? 'REPLICA_DIFFERS'}]`
    case 'failed':
      return `${style.red('✗')} ${result.vm.name}: verification failed: ${result.error.message} [${result.error.code}]`
    case 'refused':
      return `${style.red('✗')} ${result.vm.name}: refused: ${result.error.message} [${result.error.code}]`
  }
}

const STEP_TEXT: Readonly<Record<HealthCheckStep, string>> = {
  cloning: 'cloning the replica',
  copying: 'copying the replica onto the health-check SR',
  starting: 'starting',
  running: 'waiting for Running',
  tools: 'waiting for the guest tools',
  verdict: 'waiting for the guest script verdict',
  destroying: 'destroying the health-check VM',
}

function reachedText(result: Extract<HealthCheckVmResult, { clone: unknown }>): string {
  const parts: string[] = []
  if (result.reached.running !== undefined) parts.push(`running after ${seconds(result.reached.running)}`)
  if (result.reached.tools !== undefined) parts.push(`guest tools after ${seconds(result.reached.tools)}`)
  if (result.reached.verdict !== undefined) parts.push(`script success after ${seconds(result.reached.verdict)}`)
  return parts.join(', ')
}

function describeHealthCheck(result: HealthCheckVmResult, style: ChalkInstance): string {
  if (result.status === 'refused')
    return `${style.red('✗')} ${result.vm.name}: refused: ${result.error.message} [${result.error.code}]`
  const removed = result.clone === undefined ? '' : result.cleanedUp ? '; the clone was removed' : ''
  const reached = reachedText(result)
  if (result.status === 'success')
    return `${style.green('✓')} ${result.vm.name}: health check passed (${reached})${removed}`
  return `${style.red('✗')} ${result.vm.name}: health check failed: ${result.error?.message ?? ''}${reached === '' ? '' : ` (${reached})`}${removed} [${result.error?.code ?? 'UNEXPECTED'}]`
}

function verifyCell(result: VerifyVmResult): string {
  if (result.status === 'failed' || result.status === 'refused') return `${result.status} [${result.error.code}]`
  return result.status
}

export const checkFormatters: FormattersOf<CheckCommandEvent> = {
  'verify-start': {
    class: 'info',
    format: e => [
      `job "${e.job.name}": verifying ${plural(e.vms, 'VM')} (${e.mode === 'full' ? 'every 2 MiB block' : 'sampled 2 MiB blocks'})`,
    ],
  },
  'verify-vm-start': {
    class: 'progress',
    format: e => [`${e.vm.name}: comparing replica ${e.replica.name} with snapshot ${e.snapshot.name}`],
    live: { key: e => `verify-${vmKey(e.vm)}` },
  },
  'verify-progress': {
    class: 'progress',
    format: e => [
      `${e.vm.name}: disk ${e.userdevice}: ${formatBytes(e.bytes)} of ${formatBytes(e.total)} compared (${Math.floor((e.bytes * 100) / Math.max(1, e.total))} %)`,
    ],
    live: {
      key: e => `verify-${vmKey(e.vm)}/${e.userdevice}`,
      milestone: e => Math.floor((e.bytes * 10) / Math.max(1, e.total)),
    },
  },
  'verify-disk-done': {
    class: e => (e.disk.equal ? 'info' : 'error'),
    format: (e, style) => [`${e.vm.name}: ${describeDisk(e.disk, style)}`],
    live: { key: e => `verify-${vmKey(e.vm)}/${e.disk.userdevice}`, ends: true },
  },
  'verify-vm-done': {
    class: e => (e.result.status === 'equal' ? 'info' : 'error'),
    format: (e, style) => [describeVerify(e.result, style)],
    live: { key: e => `verify-${vmKey(e.result.vm)}`, ends: true },
  },
  'verify-done': {
    class: 'result',
    format: (e, style) => {
      const equal = e.results.filter(r => r.status === 'equal').length
      const rows = [
        ['VM', 'REPLICA', 'DATETIME', 'RESULT'],
        ...e.results.map(r => [
          r.vm.name,
          r.status === 'refused' ? '-' : r.replica.uuid,
          r.status === 'refused' ? '-' : (r.replica.datetime ?? '?'),
          verifyCell(r),
        ]),
      ]
      const summary = `${equal} of ${plural(e.results.length, 'VM')} of job "${e.job.name}" verified equal`
      return [
        ...(e.results.length === 0 ? [] : table(rows).map((line, i) => (i === 0 ? style.bold(line) : line))),
        equal === e.results.length ? summary : `${summary}, ${style.red(`${e.results.length - equal} not`)}`,
      ]
    },
  },
  'health-check-start': {
    class: 'info',
    format: e => [
      `job "${e.job.name}": health check of ${plural(e.vms, 'VM')} (at most ${formatBudget(e.timeoutMs)} from start to verdict each)`,
    ],
  },
  'health-check-step': {
    class: 'progress',
    format: e => [`${e.vm.name}: ${e.name}: ${STEP_TEXT[e.step]}`],
    live: { key: e => `health-check-${vmKey(e.vm)}` },
  },
  'health-check-vm-done': {
    class: e => (e.result.status === 'success' ? 'info' : 'error'),
    format: (e, style) => [describeHealthCheck(e.result, style)],
    live: { key: e => `health-check-${vmKey(e.result.vm)}`, ends: true },
  },
  'health-check-done': {
    class: 'result',
    format: (e, style) => {
      const passed = e.results.filter(r => r.status === 'success').length
      const rows = [
        ['VM', 'REPLICA DATETIME', 'MODE', 'RESULT'],
        ...e.results.map(r => [
          r.vm.name,
          r.status === 'refused' ? '-' : (r.replica.datetime ?? '?'),
          r.status === 'refused' ? '-' : r.mode,
          r.status === 'success' ? 'passed' : `${r.status} [${r.error?.code ?? '?'}]`,
        ]),
      ]
      const summary = `${passed} of ${plural(e.results.length, 'VM')} of job "${e.job.name}" passed the health check`
      return [
        ...(e.results.length === 0 ? [] : table(rows).map((line, i) => (i === 0 ? style.bold(line) : line))),
        passed === e.results.length ? summary : `${summary}, ${style.red(`${e.results.length - passed} not`)}`,
      ]
    },
  },
}
