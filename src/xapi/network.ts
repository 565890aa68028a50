/** Networks: look one up for a VIF on the target pool. */
import type { CallOptions, XapiClient } from './client.js'
import type { NetworkRecord, Ref } from './types.js'

/** Networks whose `name_label` is `name`. */
export async function findNetworksByName(
  client: XapiClient,
  name: string,
  options: CallOptions = {},
): Promise<Array<{ ref: Ref<'network'>; record: NetworkRecord }>> {
  const found: Array<{ ref: Ref<'network'>; record: NetworkRecord }> = []
  for (const [ref, record] of await client.getAllRecords('network', options)) {
    if (record.name_label === name) found.push({ ref, record })
  }
  return found
}

/** The network on bridge `bridge` (e.g. `xenbr0`), if any. */
export async function findNetworkByBridge(
  client: XapiClient,
  bridge: string,
  options: CallOptions = {},
): Promise<Ref<'network'> | undefined> {
  for (const [ref, record] of await client.getAllRecords('network', options)) {
    if (record.bridge === bridge) return ref
  }
  return undefined
}
