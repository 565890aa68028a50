/** SRs: find one by uuid or name, the pool's default, and which hosts can reach it. */
import type { CallOptions, XapiClient } from './client.js'
import { isNullRef, type Ref, type SrRecord } from './types.js'

/** The pool's `default_SR`, or undefined when it is unset. */
export async function getDefaultSr(client: XapiClient, options: CallOptions = {}): Promise<Ref<'SR'> | undefined> {
  const pool = await client.getRecord('pool', client.poolRef, options)
  return isNullRef(pool.default_SR) ? undefined : pool.default_SR
}

/** SRs whose `name_label` is `name`. */
export async function findSrsByName(
  client: XapiClient,
  name: string,
  options: CallOptions = {},
): Promise<Array<{ ref: Ref<'SR'>; record: SrRecord }>> {
  const found: Array<{ ref: Ref<'SR'>; record: SrRecord }> = []
  for (const [ref, record] of await client.getAllRecords('SR', options)) {
    if (record.name_label === name) found.push({ ref, record })
  }
  return found
}

/** Hosts with a currently attached PBD of this SR (every host for a shared SR). */
export async function hostsOfSr(client: XapiClient, sr: Ref<'SR'>, options: CallOptions = {}): Promise<Ref<'host'>[]> {
  const record = await client.getRecord('SR', sr, options)
  const hosts: Ref<'host'>[] = []
  for (const pbdRef of record.PBDs) {
    const pbd = await client.getRecord('PBD', pbdRef, options)
    if (pbd.currently_attached) hosts.push(pbd.host)
  }
  return hosts
}
