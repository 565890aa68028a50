/** VIFs: a VM's network interfaces. */
import type { CallOptions, XapiClient } from './client.js'
import type { Ref, StringMap, VifRecord } from './types.js'

export interface VifCreateParams {
  readonly VM: Ref<'VM'>
  readonly network: Ref<'network'>
  /** `"0"`, `"1"`, … */
  readonly device: string
  /** `""` lets XAPI generate one */
  readonly MAC?: string
  readonly MTU?: number
  readonly other_config?: StringMap
  readonly qos_algorithm_type?: string
  readonly qos_algorithm_params?: StringMap
  readonly locking_mode?: string
  readonly ipv4_allowed?: readonly string[]
  readonly ipv6_allowed?: readonly string[]
}

/** `VIF.create`; `DEVICE_ALREADY_EXISTS` when the device slot is taken, `MAC_INVALID` for a bad MAC. */
export function createVif(client: XapiClient, params: VifCreateParams, options: CallOptions = {}): Promise<Ref<'VIF'>> {
  const record = {
    VM: params.VM,
    network: params.network,
    device: params.device,
    MAC: params.MAC ?? '',
    MTU: params.MTU ?? 1500,
    other_config: params.other_config ?? {},
    qos_algorithm_type: params.qos_algorithm_type ?? '',
    qos_algorithm_params: params.qos_algorithm_params ?? {},
    locking_mode: params.locking_mode ?? 'network_default',
    ipv4_allowed: params.ipv4_allowed ?? [],
    ipv6_allowed: params.ipv6_allowed ?? [],
  }
  return client.call<Ref<'VIF'>>('VIF.create', [record], options)
}

/**
 * What `VIF.create` needs to make `vif` again on `vm` and `network`: same device, MAC, MTU, QoS,
 * locking and `other_config` (a replica or a failed-over VM keeps its MACs, as XO does: DHCP
 * leases and licences follow them).
 */
export function vifCopyParams(
  vif: Pick<
    VifRecord,
    | 'device'
    | 'MAC'
    | 'MTU'
    | 'other_config'
    | 'qos_algorithm_type'
    | 'qos_algorithm_params'
    | 'locking_mode'
    | 'ipv4_allowed'
    | 'ipv6_allowed'
  >,
  vm: Ref<'VM'>,
  network: Ref<'network'>,
): VifCreateParams {
  return {
    VM: vm,
    network,
    device: vif.device,
    MAC: vif.MAC,
    MTU: vif.MTU,
    other_config: vif.other_config,
    qos_algorithm_type: vif.qos_algorithm_type,
    qos_algorithm_params: vif.qos_algorithm_params,
    locking_mode: vif.locking_mode,
    ipv4_allowed: vif.ipv4_allowed,
    ipv6_allowed: vif.ipv6_allowed,
  }
}

/** `VIF.destroy`. */
export async function destroyVif(client: XapiClient, vif: Ref<'VIF'>, options: CallOptions = {}): Promise<void> {
  await client.call('VIF.destroy', [vif], options)
}
