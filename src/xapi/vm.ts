/** VM operations used by replication, seeding, failover and health checks. */
import type { CallOptions, XapiClient } from './client.js'
import type { Ref } from './types.js'

/**
 * `VM.snapshot`: a snapshot VM with snapshots of the disks. `ignoreVdis` needs a host of API 21.4
 * or later; it is sent only when non-empty so older hosts keep working. Called synchronously: a
 * storage-level snapshot is answered within the call timeout, where `Async.VM.snapshot` costs a
 * task to watch (two `event.from`) and destroy. Not cut by an abort, as `cloneVdi`: the host
 * makes the snapshot whether or not we wait, so the caller gets its ref and registers its
 * removal; the abort is reported by the caller's next call.
 */
export function snapshotVm(
  client: XapiClient,
  vm: Ref<'VM'>,
  name: string,
  options: CallOptions & { ignoreVdis?: readonly Ref<'VDI'>[] } = {},
): Promise<Ref<'VM'>> {
  const args: unknown[] = [vm, name]
  if (options.ignoreVdis !== undefined && options.ignoreVdis.length > 0) args.push(options.ignoreVdis)
  const { signal: _later, ...unbounded } = callOptions(options)
  return client.call<Ref<'VM'>>('VM.snapshot', args, unbounded)
}

/** `VM.clone` (async): fast storage-level clone. */
export function cloneVm(
  client: XapiClient,
  vm: Ref<'VM'>,
  name: string,
  options: CallOptions = {},
): Promise<Ref<'VM'>> {
  return client.callAsync<Ref<'VM'>>('VM.clone', [vm, name], options)
}

/** `VM.copy` (async): full copy of the disks into `sr` (`OpaqueRef:NULL` = each disk's own SR). */
export function copyVm(
  client: XapiClient,
  vm: Ref<'VM'>,
  name: string,
  sr: Ref<'SR'>,
  options: CallOptions = {},
): Promise<Ref<'VM'>> {
  return client.callAsync<Ref<'VM'>>('VM.copy', [vm, name, sr], options)
}

/**
 * `VM.destroy`: a database operation, called synchronously as XO does (no task to watch and
 * destroy). XAPI leaves the VM's VDIs behind; destroy them separately.
 */
export async function destroyVm(client: XapiClient, vm: Ref<'VM'>, options: CallOptions = {}): Promise<void> {
  await client.call('VM.destroy', [vm], options)
}

/**
 * `VM.create` with a full record (every field XAPI requires: name, memory, VCPUs, actions,
 * PV/HVM fields, platform, other_config, …). XAPI ignores `blocked_operations` here.
 */
export function createVm(
  client: XapiClient,
  record: Readonly<Record<string, unknown>>,
  options: CallOptions = {},
): Promise<Ref<'VM'>> {
  return client.call<Ref<'VM'>>('VM.create', [record], options)
}

/** Blocks `operation` (e.g. `start`) with `reason` shown to whoever tries it. */
export function blockOperation(
  client: XapiClient,
  vm: Ref<'VM'>,
  operation: string,
  reason: string,
  options: CallOptions = {},
): Promise<void> {
  return client.setMapEntry('VM', vm, 'blocked_operations', operation, reason, options)
}

/** Lifts a block set by {@link blockOperation} (silent when there is none). */
export function unblockOperation(
  client: XapiClient,
  vm: Ref<'VM'>,
  operation: string,
  options: CallOptions = {},
): Promise<void> {
  return client.setMapEntry('VM', vm, 'blocked_operations', operation, null, options)
}

/** `VM.add_tags`: adds `tag` to the VM's tags (no error if present). */
export async function addTag(client: XapiClient, vm: Ref<'VM'>, tag: string, options: CallOptions = {}): Promise<void> {
  await client.call('VM.add_tags', [vm, tag], options)
}

/** `VM.remove_tags`: removes `tag` (no error if absent). */
export async function removeTag(
  client: XapiClient,
  vm: Ref<'VM'>,
  tag: string,
  options: CallOptions = {},
): Promise<void> {
  await client.call('VM.remove_tags', [vm, tag], options)
}

/** Sets (string) or removes (null) `other_config` entries, one remove-then-add per key. */
export async function setVmOtherConfig(
  client: XapiClient,
  vm: Ref<'VM'>,
  entries: Readonly<Record<string, string | null>>,
  options: CallOptions = {},
): Promise<void> {
  for (const [key, value] of Object.entries(entries)) {
    await client.setMapEntry('VM', vm, 'other_config', key, value, options)
  }
}

/**
 * `VM.set_other_config`: replaces the whole map in one call. For maps only xen-cr writes on the
 * object (a snapshot or replica it made), built from the record just read plus our keys — one
 * write instead of a remove/add pair per key.
 */
export async function replaceVmOtherConfig(
  client: XapiClient,
  vm: Ref<'VM'>,
  map: Readonly<Record<string, string>>,
  options: CallOptions = {},
): Promise<void> {
  await client.call('VM.set_other_config', [vm, map], options)
}

/**
 * `VM.set_blocked_operations`: the whole map in one call (`VM.create` forces it to `{}`, so a
 * new VM's map is exactly what we write).
 */
export async function setVmBlockedOperations(
  client: XapiClient,
  vm: Ref<'VM'>,
  map: Readonly<Record<string, string>>,
  options: CallOptions = {},
): Promise<void> {
  await client.call('VM.set_blocked_operations', [vm, map], options)
}

/** `VM.set_name_label`. */
export async function setVmNameLabel(
  client: XapiClient,
  vm: Ref<'VM'>,
  name: string,
  options: CallOptions = {},
): Promise<void> {
  await client.call('VM.set_name_label', [vm, name], options)
}

/** `VM.set_name_description`. */
export async function setVmNameDescription(
  client: XapiClient,
  vm: Ref<'VM'>,
  description: string,
  options: CallOptions = {},
): Promise<void> {
  await client.call('VM.set_name_description', [vm, description], options)
}

/** XO clears `is_a_template` on its snapshots so they show as VMs. */
export async function setVmIsATemplate(
  client: XapiClient,
  vm: Ref<'VM'>,
  value: boolean,
  options: CallOptions = {},
): Promise<void> {
  await client.call('VM.set_is_a_template', [vm, value], options)
}

/** `VM.start` (async); `OPERATION_BLOCKED` when start is blocked, as on replicas. */
export async function startVm(
  client: XapiClient,
  vm: Ref<'VM'>,
  options: CallOptions & { paused?: boolean; force?: boolean } = {},
): Promise<void> {
  await client.callAsync('VM.start', [vm, options.paused === true, options.force === true], callOptions(options))
}

/** `VM.clean_shutdown` (async): asks the guest to shut down. */
export async function cleanShutdownVm(client: XapiClient, vm: Ref<'VM'>, options: CallOptions = {}): Promise<void> {
  await client.callAsync('VM.clean_shutdown', [vm], options)
}

/** `VM.hard_shutdown` (async): powers the VM off. */
export async function hardShutdownVm(client: XapiClient, vm: Ref<'VM'>, options: CallOptions = {}): Promise<void> {
  await client.callAsync('VM.hard_shutdown', [vm], options)
}

function callOptions(options: CallOptions): CallOptions {
  return {
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  }
}
