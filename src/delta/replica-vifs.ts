/**
 * A replica's VIFs: each source VIF recreated on the target network the map (or the default
 * match) gives, or skipped with a warning when the target has no network for it.
 */
import type { CallOptions, XapiClient } from '../xapi/client.js'
import type { Ref } from '../xapi/types.js'
import { createVif, destroyVif, vifCopyParams } from '../xapi/vif.js'
import type { CleanupStack } from './cleanup.js'
import { mapNetwork, type TargetNetwork } from './network-map.js'
import type { PassNetworks } from './pass-networks.js'
import type { DeltaVif } from './vm-metadata.js'

export type ReplicaVifWarning = 'NETWORK_MAPPED_TO_DEFAULT' | 'VIF_WITHOUT_NETWORK'

export interface ReplicaVifsOptions {
  readonly target: XapiClient
  readonly vm: Ref<'VM'>
  readonly vifs: readonly DeltaVif[]
  /** source network uuid → target network uuid */
  readonly networkMap: Readonly<Record<string, string>>
  readonly cleanup: CleanupStack
  readonly warn: (code: ReplicaVifWarning, message: string) => void
  /** the pass's networks: the target's are read once per pass (else once per call) */
  readonly networks?: PassNetworks
}

/** Creates the VIFs of `o.vifs` on `o.vm`, each registered on the cleanup stack. */
export async function createReplicaVifs(o: ReplicaVifsOptions, opts: CallOptions): Promise<void> {
  if (o.vifs.length === 0) return
  const networks =
    o.networks === undefined
      ? await targetNetworks(o.target, opts)
      : await o.networks.target(() => targetNetworks(o.target))
  for (const { vif, network } of o.vifs) {
    const mapped = mapNetwork(network, networks, o.networkMap)
    if (mapped === undefined) {
      o.warn(
        'VIF_WITHOUT_NETWORK',
        `no network on the target for VIF ${vif.device} (network ${network.name}); the replica has no VIF ${vif.device}`,
      )
      continue
    }
    if (mapped.match === 'default') {
      o.warn(
        'NETWORK_MAPPED_TO_DEFAULT',
        `network ${network.name} (${network.uuid}) has no match on the target; VIF ${vif.device} goes on ${mapped.network.name}; add a network map to choose`,
      )
    }
    const vifRef = await createVif(o.target, vifCopyParams(vif, o.vm, mapped.network.ref as Ref<'network'>), opts)
    o.cleanup.defer(`replica VIF ${vifRef}`, () => destroyVif(o.target, vifRef))
  }
}

async function targetNetworks(target: XapiClient, opts: CallOptions = {}): Promise<TargetNetwork[]> {
  const [networks, pifs] = await Promise.all([target.getAllRecords('network', opts), target.getAllRecords('PIF', opts)])
  const out: TargetNetwork[] = []
  for (const [ref, network] of networks) {
    const own = network.PIFs.map(p => pifs.get(p)).filter(p => p !== undefined)
    out.push({
      ref,
      uuid: network.uuid,
      name: network.name_label,
      vlan: own[0]?.VLAN,
      management: own.some(p => p.management),
    })
  }
  return out
}
