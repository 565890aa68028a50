/** VDI operations: create, clone, snapshot, resize, destroy, metadata. */
import type { CallOptions, XapiClient } from './client.js'
import type { Ref, StringMap } from './types.js'

export interface VdiCreateParams {
  readonly SR: Ref<'SR'>
  readonly virtual_size: number
  readonly name_label: string
  readonly name_description?: string
  /** default `user` */
  readonly type?: string
  readonly sharable?: boolean
  readonly read_only?: boolean
  readonly other_config?: StringMap
  readonly xenstore_data?: StringMap
  readonly sm_config?: StringMap
  readonly tags?: readonly string[]
}

/** `VDI.create`: a new empty disk (reads as zeros). */
export function createVdi(client: XapiClient, params: VdiCreateParams, options: CallOptions = {}): Promise<Ref<'VDI'>> {
  const record = {
    name_label: params.name_label,
    name_description: params.name_description ?? '',
    SR: params.SR,
    virtual_size: params.virtual_size,
    type: params.type ?? 'user',
    sharable: params.sharable ?? false,
    read_only: params.read_only ?? false,
    other_config: params.other_config ?? {},
    xenstore_data: params.xenstore_data ?? {},
    sm_config: params.sm_config ?? {},
    tags: params.tags ?? [],
  }
  return client.call<Ref<'VDI'>>('VDI.create', [record], options)
}

/**
 * `VDI.clone`: a writable copy-on-write copy; a delta imported on it lands on top. Called
 * synchronously, as XO clones a replica's base disk: a storage-level snapshot, answered within
 * the call timeout, where `Async.VDI.clone` costs a watch (two `event.from`) and a
 * `task.destroy` more. Not cut by an abort: the host makes the clone whether or not we wait,
 * and a clone whose ref we never learnt is left for a later sweep; the abort is reported once
 * the ref is in (and the caller has registered the clone's removal).
 */
export async function cloneVdi(client: XapiClient, vdi: Ref<'VDI'>, options: CallOptions = {}): Promise<Ref<'VDI'>> {
  const { signal: _later, ...unbounded } = options
  return client.call<Ref<'VDI'>>('VDI.clone', [vdi, {}], unbounded)
}

/** `VDI.snapshot` (async): a read-only snapshot of the disk as it is now. */
export function snapshotVdi(client: XapiClient, vdi: Ref<'VDI'>, options: CallOptions = {}): Promise<Ref<'VDI'>> {
  return client.callAsync<Ref<'VDI'>>('VDI.snapshot', [vdi, {}], options)
}

/**
 * `VDI.destroy`; `VDI_IN_USE` while a VBD holds it attached. Called synchronously, as
 * `VM.destroy` is: there is no result to wait for, and an answer lost on the way leaves nothing
 * unknown that a second try cannot tell (`HANDLE_INVALID`: it is gone) — where the task of
 * `Async.VDI.destroy` costs a watch and a `task.destroy` more.
 */
export async function destroyVdi(client: XapiClient, vdi: Ref<'VDI'>, options: CallOptions = {}): Promise<void> {
  await client.call('VDI.destroy', [vdi], options)
}

/** `VDI.resize` (async): grow the virtual size to `size` bytes. */
export async function resizeVdi(
  client: XapiClient,
  vdi: Ref<'VDI'>,
  size: number,
  options: CallOptions = {},
): Promise<void> {
  await client.callAsync('VDI.resize', [vdi, size], options)
}

/** Sets (string) or removes (null) `other_config` entries, one remove-then-add per key. */
export async function setVdiOtherConfig(
  client: XapiClient,
  vdi: Ref<'VDI'>,
  entries: Readonly<Record<string, string | null>>,
  options: CallOptions = {},
): Promise<void> {
  for (const [key, value] of Object.entries(entries)) {
    await client.setMapEntry('VDI', vdi, 'other_config', key, value, options)
  }
}

/** `VDI.set_other_config`: replaces the whole map in one call (see `replaceVmOtherConfig`). */
export async function replaceVdiOtherConfig(
  client: XapiClient,
  vdi: Ref<'VDI'>,
  map: Readonly<Record<string, string>>,
  options: CallOptions = {},
): Promise<void> {
  await client.call('VDI.set_other_config', [vdi, map], options)
}

/** `VDI.set_name_label` (name_label has no generic setter on VDIs). */
export async function setVdiNameLabel(
  client: XapiClient,
  vdi: Ref<'VDI'>,
  name: string,
  options: CallOptions = {},
): Promise<void> {
  await client.call('VDI.set_name_label', [vdi, name], options)
}

/** `VDI.set_name_description`. */
export async function setVdiNameDescription(
  client: XapiClient,
  vdi: Ref<'VDI'>,
  description: string,
  options: CallOptions = {},
): Promise<void> {
  await client.call('VDI.set_name_description', [vdi, description], options)
}
