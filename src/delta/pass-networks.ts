/**
 * The pools' networks as one pass sees them: the source networks the VMs' VIFs are on (with
 * their first PIF's VLAN) and the target's networks, each read once per pass rather than once
 * per VM — many VMs share a few networks. A network created or changed during a pass is seen
 * by the next pass, as every other record.
 */
import type { SourceNetwork, TargetNetwork } from './network-map.js'

export class PassNetworks {
  /**
   * source networks by ref, read or being read (VMs that run at once wait on the same read);
   * undefined: the ref names no network
   */
  readonly source = new Map<string, Promise<SourceNetwork | undefined>>()
  #target: Promise<readonly TargetNetwork[]> | undefined

  /**
   * The target's networks, read by `read` the first time (and again after a failed read). `read`
   * must not be bound to one VM's signal: VMs that run beside it wait on the same answer.
   */
  target(read: () => Promise<readonly TargetNetwork[]>): Promise<readonly TargetNetwork[]> {
    const pending = (this.#target ??= read())
    pending.catch(() => {
      if (this.#target === pending) this.#target = undefined
    })
    return pending
  }
}
