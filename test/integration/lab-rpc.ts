/** Raw RPC helpers for the lab tests: plain fetch, no client library, so the bytes are ours to check. */

export interface RawResponse {
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

export async function post(url: string, path: string, body: string, contentType = 'text/xml'): Promise<RawResponse> {
  const response = await fetch(new URL(path, url), { method: 'POST', body, headers: { 'content-type': contentType } })
  return { status: response.status, headers: response.headers, text: await response.text() }
}

export type JsonOutcome = { ok: true; result: unknown } | { ok: false; code: string; params: string[] }

/** One JSON-RPC v2 call. */
export async function jsonCall(url: string, method: string, ...params: unknown[]): Promise<JsonOutcome> {
  const response = await post(
    url,
    '/jsonrpc',
    JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    'application/json',
  )
  if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${response.text}`)
  const body = JSON.parse(response.text) as {
    result?: unknown
    error?: { code: number; message: string; data: string[] }
  }
  if (body.error !== undefined) return { ok: false, code: body.error.message, params: body.error.data }
  return { ok: true, result: body.result }
}

/** The result of a call that must succeed. */
export async function ok<T = unknown>(url: string, method: string, ...params: unknown[]): Promise<T> {
  const outcome = await jsonCall(url, method, ...params)
  if (!outcome.ok) throw new Error(`${method} failed: ${outcome.code} ${JSON.stringify(outcome.params)}`)
  return outcome.result as T
}

/** A raw session on a lab pool, as its first user. */
export function login(pool: {
  readonly url: string
  readonly user: string
  readonly password: string
}): Promise<string> {
  return ok<string>(pool.url, 'session.login_with_password', pool.user, pool.password)
}

/** [code, params] of a call that must fail. */
export async function failure(url: string, method: string, ...params: unknown[]): Promise<[string, string[]]> {
  const outcome = await jsonCall(url, method, ...params)
  if (outcome.ok) throw new Error(`${method} unexpectedly succeeded with ${JSON.stringify(outcome.result)}`)
  return [outcome.code, outcome.params]
}

/** Waits (through event.from, no polling timers) until the task is no longer pending; returns its record. */
export async function awaitTask(url: string, session: string, task: string): Promise<Record<string, unknown>> {
  let token = ''
  for (;;) {
    const record = await ok<Record<string, unknown>>(url, 'task.get_record', session, task)
    if (record['status'] !== 'pending') return record
    const result = await ok<{ token: string }>(url, 'event.from', session, [`task/${task}`], token, 30)
    token = result.token
  }
}

/** Every field VM.create requires, int64s as strings as on the wire; a plain halted VM with no keys. */
export const VM_CREATE_RECORD = {
  name_label: 'created',
  user_version: '1',
  is_a_template: false,
  affinity: 'OpaqueRef:NULL',
  memory_static_max: '1073741824',
  memory_dynamic_max: '1073741824',
  memory_dynamic_min: '1073741824',
  memory_static_min: '536870912',
  VCPUs_params: {},
  VCPUs_max: '1',
  VCPUs_at_startup: '1',
  actions_after_shutdown: 'destroy',
  actions_after_reboot: 'restart',
  actions_after_crash: 'restart',
  PV_bootloader: '',
  PV_kernel: '',
  PV_ramdisk: '',
  PV_args: '',
  PV_bootloader_args: '',
  PV_legacy_args: '',
  HVM_boot_policy: 'BIOS order',
  HVM_boot_params: {},
  platform: {},
  PCI_bus: '',
  other_config: {},
  recommendations: '',
}
