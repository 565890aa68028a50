import type { Command } from 'commander'

/** `xen-cr lab`: placeholder registration, replaced by the lab implementation. */
export function registerLabCommand(program: Command): void {
  program.command('lab').description('run simulated XenServer pools on loopback')
}
