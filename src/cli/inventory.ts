import type { Command } from 'commander'
import { contextOf } from './context.js'

/**
 * `xen-cr vms|srs|networks <pool>`: what a job can name on a configured pool, with the uuids
 * `job create` takes, so that building a job needs neither XenCenter nor raw RPC.
 */
export function registerInventoryCommands(program: Command): void {
  program
    .command('vms')
    .argument('<pool>', 'pool name in the config')
    .description('VMs of a pool (no templates or snapshots): uuid, power state, disks and their size, tags')
    .action(async (pool: string, _options: unknown, command: Command) => {
      const context = contextOf(command)
      const client = await context.connect(pool)
      const { readVmInventory } = await import('../xapi/inventory.js')
      context.output.emit({
        kind: 'vm-inventory',
        pool,
        vms: await readVmInventory(client, { signal: context.signal }),
      })
    })

  program
    .command('srs')
    .argument('<pool>', 'pool name in the config')
    .description('SRs of a pool: uuid, type, content, shared, size, free space, the default SR')
    .action(async (pool: string, _options: unknown, command: Command) => {
      const context = contextOf(command)
      const client = await context.connect(pool)
      const { readSrInventory } = await import('../xapi/inventory.js')
      context.output.emit({
        kind: 'sr-inventory',
        pool,
        srs: await readSrInventory(client, { signal: context.signal }),
      })
    })

  program
    .command('networks')
    .argument('<pool>', 'pool name in the config')
    .description('networks of a pool: uuid, bridge, VLAN, MTU (for --network-map)')
    .action(async (pool: string, _options: unknown, command: Command) => {
      const context = contextOf(command)
      const client = await context.connect(pool)
      const { readNetworkInventory } = await import('../xapi/inventory.js')
      context.output.emit({
        kind: 'network-inventory',
        pool,
        networks: await readNetworkInventory(client, { signal: context.signal }),
      })
    })
}
