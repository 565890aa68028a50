/**
 * `failover --network-map SRC=DST`: which target network each VIF of a failover VM ends on.
 * A replica's VIFs are already on target networks (the pass mapped them with the job's network
 * map), so by default they stay where they are. SRC names the network a replica VIF is on — by
 * uuid or name on the target — or a source network uuid of the job's network map (the source
 * pool may be unreachable, so that map is the only link back); DST is a target network, by
 * uuid or name. Everything is resolved before anything is created.
 */
import { UsageError, ValidationError } from '../errors.js'

/** What happens to the VIFs of a failover VM. */
export type NetworkChoice =
  /** keep the networks of the replica */
  | { readonly kind: 'keep' }
  /** no VIF at all (`--no-network`) */
  | { readonly kind: 'none' }
  | { readonly kind: 'map'; readonly pairs: readonly (readonly [string, string])[] }

export interface TargetNetworkFields {
  readonly uuid: string
  readonly name_label: string
}

/** `SRC=DST` (split at the first `=`: uuids have none, a name may). */
export function parseNetworkPair(value: string): [string, string] {
  const at = value.indexOf('=')
  const pair: [string, string] = [value.slice(0, at).trim(), value.slice(at + 1).trim()]
  if (at <= 0 || pair[0] === '' || pair[1] === '')
    throw new UsageError('BAD_NETWORK_MAP', `--network-map ${value}: expected SRC=DST (network uuids or names)`)
  return pair
}

function byUuidOrName(networks: ReadonlyMap<string, TargetNetworkFields>, handle: string): string[] {
  const byUuid = [...networks].filter(([, n]) => n.uuid === handle).map(([ref]) => ref)
  return byUuid.length > 0 ? byUuid : [...networks].filter(([, n]) => n.name_label === handle).map(([ref]) => ref)
}

/**
 * Resolves the pairs to target network ref → target network ref.
 * @throws ValidationError `NETWORK_NOT_FOUND`; UsageError `NETWORK_AMBIGUOUS`, `NETWORK_MAP_CONFLICT`
 */
export function resolveNetworkRemap(
  pairs: readonly (readonly [string, string])[],
  networks: ReadonlyMap<string, TargetNetworkFields>,
  jobNetworkMap: Readonly<Record<string, string>>,
): Map<string, string> {
  const out = new Map<string, string>()
  for (const [src, dst] of pairs) {
    const destinations = byUuidOrName(networks, dst)
    if (destinations.length === 0)
      throw new ValidationError(
        'NETWORK_NOT_FOUND',
        `--network-map ${src}=${dst}: no network ${dst} on the target pool`,
      )
    if (destinations.length > 1)
      throw new UsageError(
        'NETWORK_AMBIGUOUS',
        `--network-map ${src}=${dst}: ${destinations.length} target networks are named ${dst}; give its uuid`,
      )
    const sources = new Set(byUuidOrName(networks, src))
    const mapped = Object.hasOwn(jobNetworkMap, src) ? jobNetworkMap[src] : undefined
    for (const [ref, n] of networks) if (n.uuid === mapped) sources.add(ref)
    if (sources.size === 0)
      throw new ValidationError(
        'NETWORK_NOT_FOUND',
        `--network-map ${src}=${dst}: ${src} is neither a network of the target pool nor a source network of the job's network map`,
      )
    for (const ref of sources) {
      const previous = out.get(ref)
      if (previous !== undefined && previous !== destinations[0])
        throw new UsageError(
          'NETWORK_MAP_CONFLICT',
          `--network-map: network ${src} is mapped twice to different networks`,
        )
      out.set(ref, destinations[0]!)
    }
  }
  return out
}
