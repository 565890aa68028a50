/**
 * Which target network a replicated VIF goes on. Order (XO's, plus an explicit map first):
 * the job's network map; else the network with the same uuid (same pool); else same VLAN and
 * same name; else the first network with that VLAN; else the pool's default network. Networks
 * without PIFs are only reachable through the map or the uuid (XO ignores them for VLAN matching).
 */

/** What the export records about a VIF's network. */
export interface SourceNetwork {
  readonly uuid: string
  readonly name: string
  /** VLAN of its first PIF; -1 untagged; undefined when it has no PIF */
  readonly vlan: number | undefined
}

export interface TargetNetwork {
  readonly ref: string
  readonly uuid: string
  readonly name: string
  readonly vlan: number | undefined
  /** carries the management PIF: the pool's default */
  readonly management: boolean
}

export type NetworkMatch = 'map' | 'uuid' | 'vlan-and-name' | 'vlan' | 'default'

export function mapNetwork(
  source: SourceNetwork,
  targets: readonly TargetNetwork[],
  explicit: Readonly<Record<string, string>>,
): { network: TargetNetwork; match: NetworkMatch } | undefined {
  const mapped = explicit[source.uuid]
  if (mapped !== undefined) {
    const network = targets.find(t => t.uuid === mapped)
    if (network !== undefined) return { network, match: 'map' }
  }
  const same = targets.find(t => t.uuid === source.uuid)
  if (same !== undefined) return { network: same, match: 'uuid' }
  const withPif = targets.filter(t => t.vlan !== undefined)
  if (source.vlan !== undefined) {
    const both = withPif.find(t => t.vlan === source.vlan && t.name === source.name)
    if (both !== undefined) return { network: both, match: 'vlan-and-name' }
    const vlan = withPif.find(t => t.vlan === source.vlan)
    if (vlan !== undefined) return { network: vlan, match: 'vlan' }
  }
  const fallback = withPif.find(t => t.management) ?? withPif[0]
  return fallback === undefined ? undefined : { network: fallback, match: 'default' }
}
