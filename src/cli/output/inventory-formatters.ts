import { formatBytes } from '../../jobs/rate.js'
import { table, type FormattersOf } from './formatter.js'
import type { InventoryEvent } from './operator-events.js'

function tableOr(rows: string[][], none: string): string[] {
  // an empty last cell (a VM without tags) would leave the padding of the others behind
  return rows.length === 1 ? [none] : table(rows).map(line => line.trimEnd())
}

/** `xen-cr vms|srs|networks <pool>`: one table each, uuids in full (they are what a job takes). */
export const inventoryFormatters: FormattersOf<InventoryEvent> = {
  'vm-inventory': {
    class: 'result',
    format: (event, style) =>
      tableOr(
        [
          ['NAME', 'UUID', 'POWER', 'DISKS', 'SIZE', 'TAGS'],
          ...event.vms.map(vm => [
            vm.name,
            vm.uuid,
            vm.powerState,
            String(vm.disks),
            formatBytes(vm.diskBytes),
            vm.tags.join(', '),
          ]),
        ],
        `pool ${event.pool} has no VM`,
      ).map((line, index) => (index === 0 ? style.bold(line) : line)),
  },
  'sr-inventory': {
    class: 'result',
    format: (event, style) =>
      tableOr(
        [
          ['NAME', 'UUID', 'TYPE', 'CONTENT', 'SHARED', 'SIZE', 'FREE', 'DEFAULT'],
          ...event.srs.map(sr => [
            sr.name,
            sr.uuid,
            sr.type,
            sr.contentType || '-',
            sr.shared ? 'yes' : 'no',
            formatBytes(sr.size),
            formatBytes(sr.free),
            sr.default ? 'default' : '',
          ]),
        ],
        `pool ${event.pool} has no SR`,
      ).map((line, index) => (index === 0 ? style.bold(line) : line)),
  },
  'network-inventory': {
    class: 'result',
    format: (event, style) =>
      tableOr(
        [
          ['NAME', 'UUID', 'BRIDGE', 'VLAN', 'MTU'],
          ...event.networks.map(network => [
            network.name,
            network.uuid,
            network.bridge,
            network.vlan === undefined ? '-' : String(network.vlan),
            String(network.mtu),
          ]),
        ],
        `pool ${event.pool} has no network`,
      ).map((line, index) => (index === 0 ? style.bold(line) : line)),
  },
}
