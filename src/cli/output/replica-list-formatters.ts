import type { ChalkInstance } from 'chalk'
import type { ReplicationReportEvent } from '../../replication/events.js'
import type { VmStatus } from '../../replication/list.js'
import { table, type FormattersOf } from './formatter.js'

type ReplicaListEvent = Extract<ReplicationReportEvent, { kind: 'replica-list' }>

/** `45s`, `12m`, `3h05m`, `2d04h`. */
export function formatAge(ms: number | undefined): string {
  if (ms === undefined) return '-'
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m`
  const h = Math.floor(m / 60)
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`
}

const STATUS_STYLE: Readonly<Record<VmStatus, (style: ChalkInstance, text: string) => string>> = {
  ok: (style, text) => style.green(text),
  late: (style, text) => style.red(text),
  never: (style, text) => style.yellow(text),
}

/**
 * Lines of `list`: per job a header, per VM a status line (with the source VM's uuid) and its
 * replicas with their uuids, which is what a failover or a `replicas delete --replica` names.
 */
export function formatReplicaList(event: ReplicaListEvent, style: ChalkInstance): string[] {
  if (event.listings.length === 0) return ['no jobs; create one with: xen-cr job create --help']
  return event.listings.flatMap((listing, index) => {
    const rows: string[][] = [['VM', 'REPLICA', 'UUID', 'SR', 'DATETIME', 'AGE', 'CHAIN', 'STATUS']]
    for (const vm of listing.vms) {
      rows.push([
        vm.vm.name,
        `${vm.replicas.filter(r => r.complete).length} replica(s)`,
        vm.vm.uuid,
        '',
        '',
        formatAge(vm.ageMs),
        '',
        vm.status,
      ])
      for (const r of vm.replicas) {
        rows.push([
          '',
          r.name,
          r.uuid,
          r.srName,
          r.datetime ?? 'importing',
          formatAge(r.ageMs),
          r.chain,
          r.complete ? '' : 'interrupted',
        ])
      }
    }
    const lines = table(rows).map((line, i) => {
      if (i === 0) return style.bold(line)
      const vm = rows[i]![0] !== '' ? listing.vms.find(v => v.vm.name === rows[i]![0]) : undefined
      return vm === undefined
        ? line
        : line.replace(new RegExp(`${vm.status}$`), STATUS_STYLE[vm.status](style, vm.status))
    })
    return [
      ...(index === 0 ? [] : ['']),
      `job "${listing.job.name}" (${listing.job.id})${listing.job.enabled ? '' : ' [disabled]'}, RPO ${formatAge(listing.rpoMs)}`,
      ...(listing.vms.length === 0 ? ['  no VMs'] : lines),
    ]
  })
}

/** `xen-cr list`. */
export const replicaListFormatters: FormattersOf<ReplicaListEvent> = {
  'replica-list': { class: 'result', format: formatReplicaList },
}
