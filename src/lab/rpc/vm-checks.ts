/**
 * The operation pre-checks of `xapi_vm_lifecycle.ml`, in XAPI's order (reference §4.2): blocked
 * operations, power state, an operation in progress, template, snapshot, on_boot=reset disks.
 * The order matters: a protected replica is refused with OPERATION_BLOCKED, not
 * VM_BAD_POWER_STATE.
 */
import { newRef, type Database } from '../db/database.js'
import { xapiFault } from '../fault.js'

/**
 * What the checks read: only the pool's database. Taking that rather than the pool lets the
 * pool derive `VM.allowed_operations` from these checks without an import cycle.
 */
interface PoolRecords {
  readonly db: Database
}

export type PowerState = 'Halted' | 'Paused' | 'Running' | 'Suspended'

const TEMPLATE_OPS = new Set([
  'clone',
  'copy',
  'export',
  'provision',
  'metadata_export',
  'changing_memory_limits',
  'changing_static_range',
  'changing_dynamic_range',
  'changing_VCPUs',
  'changing_shadow_memory',
  'destroy',
])
const SNAPSHOT_OPS = new Set(['revert', 'clone', 'copy', 'export', 'destroy', 'hard_shutdown', 'metadata_export'])

/**
 * Why `op` would be refused now, as XAPI's failure `[code, ...params]`, or undefined when the
 * checks pass. Building no error makes it cheap enough for `allowed_operations`, which runs
 * every check on every read of a VM.
 */
export function vmOperationRefusal(
  pool: PoolRecords,
  vmRef: string,
  op: string,
  allowed: readonly PowerState[],
): readonly string[] | undefined {
  return refusal(pool, vmRef, pool.db.get('VM', vmRef), op, allowed)
}

function refusal(
  pool: PoolRecords,
  vmRef: string,
  vm: Readonly<Record<string, unknown>>,
  op: string,
  allowed: readonly PowerState[],
): readonly string[] | undefined {
  const blocked = vm['blocked_operations'] as Readonly<Record<string, string>>
  if (Object.hasOwn(blocked, op)) return ['OPERATION_BLOCKED', vmRef, blocked[op]!]
  const state = vm['power_state'] as PowerState
  if (!allowed.includes(state)) {
    return ['VM_BAD_POWER_STATE', vmRef, allowed.map(s => s.toLowerCase()).join(', '), state.toLowerCase()]
  }
  for (const [task, current] of Object.entries(vm['current_operations'] as Readonly<Record<string, string>>))
    return ['OTHER_OPERATION_IN_PROGRESS', 'VM', vmRef, current, task]
  const isSnapshot = vm['is_a_snapshot'] === true
  if (vm['is_a_template'] === true && !isSnapshot && !TEMPLATE_OPS.has(op)) return ['VM_IS_TEMPLATE', vmRef, op]
  if (op === 'destroy' && vm['is_default_template'] === true) return ['VM_CANNOT_DELETE_DEFAULT_TEMPLATE']
  if (isSnapshot && !SNAPSHOT_OPS.has(op)) return ['VM_IS_SNAPSHOT', vmRef, op]
  if (op === 'snapshot' || op === 'checkpoint') {
    for (const vbd of pool.db.related('VBD', 'VM', vmRef)) {
      const vdiRef = pool.db.get('VBD', vbd)['VDI'] as string
      const vdi = pool.db.find('VDI', vdiRef)
      if (vdi?.['on_boot'] === 'reset') return ['VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION']
    }
  }
  return undefined
}

/** {@link vmOperationRefusal}, thrown as the call's failure. */
export function assertVmOperation(pool: PoolRecords, vmRef: string, op: string, allowed: readonly PowerState[]): void {
  const refused = vmOperationRefusal(pool, vmRef, op, allowed)
  if (refused !== undefined) throw xapiFault(refused[0]!, ...refused.slice(1))
}

/**
 * Runs `fn` with `op` in the object's `current_operations` (keyed by the task, as XAPI does), and
 * takes it out again however `fn` ends.
 */
export async function withOperation<T>(
  pool: PoolRecords,
  cls: string,
  ref: string,
  op: string,
  taskRef: string | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  const key = taskRef ?? newRef()
  const before = pool.db.get(cls, ref)['current_operations'] as Readonly<Record<string, string>>
  pool.db.update(cls, ref, { current_operations: { ...before, [key]: op } })
  try {
    return await fn()
  } finally {
    const now = pool.db.find(cls, ref)
    if (now !== undefined) {
      const ops = { ...(now['current_operations'] as Readonly<Record<string, string>>) }
      delete ops[key]
      pool.db.update(cls, ref, { current_operations: ops })
    }
  }
}

/** {@link withOperation} on a VM. */
export function withVmOperation<T>(
  pool: PoolRecords,
  vmRef: string,
  op: string,
  taskRef: string | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  return withOperation(pool, 'VM', vmRef, op, taskRef, fn)
}

const STATE_RULES: Readonly<Record<string, readonly PowerState[]>> = {
  snapshot: ['Halted', 'Paused', 'Running', 'Suspended'],
  metadata_export: ['Halted', 'Paused', 'Running', 'Suspended'],
  clone: ['Halted'],
  copy: ['Halted'],
  export: ['Halted', 'Suspended'],
  destroy: ['Halted', 'Suspended'],
  start: ['Halted'],
  start_on: ['Halted'],
  provision: ['Halted'],
  changing_memory_limits: ['Halted'],
  changing_static_range: ['Halted'],
  changing_dynamic_range: ['Halted', 'Running'],
  changing_shadow_memory: ['Halted'],
  changing_VCPUs: ['Halted'],
  changing_VCPUs_live: ['Running'],
  make_into_template: ['Halted'],
  clean_shutdown: ['Running'],
  clean_reboot: ['Running'],
  pause: ['Running'],
  suspend: ['Running'],
  checkpoint: ['Running'],
  pool_migrate: ['Running'],
  unpause: ['Paused'],
  resume: ['Suspended'],
  hard_reboot: ['Running', 'Paused'],
  hard_shutdown: ['Running', 'Paused', 'Suspended'],
}

const STATE_RULES_LIST = Object.entries(STATE_RULES)

/** Operations XAPI accepts in every power state (xapi_vm_lifecycle.allowed_power_states). */
const ANY_STATE = new Set([
  'assert_operation_valid',
  'metadata_export',
  'power_state_reset',
  'revert',
  'reverting',
  'snapshot',
  'update_allowed_operations',
  'query_services',
])
const MORE_RULES: Readonly<Record<string, readonly PowerState[]>> = {
  changing_memory_live: ['Running'],
  awaiting_memory_live: ['Running'],
  changing_shadow_memory_live: ['Running'],
  call_plugin: ['Running'],
  data_source_op: ['Running'],
  send_sysrq: ['Running'],
  send_trigger: ['Running'],
  snapshot_with_quiesce: ['Running'],
  csvm: ['Suspended'],
  resume_on: ['Suspended'],
  get_boot_record: ['Paused', 'Suspended', 'Running'],
  shutdown: ['Paused', 'Suspended', 'Running'],
  migrate_send: ['Halted', 'Suspended', 'Running'],
}

/**
 * `VM.assert_operation_valid`: the checks of `op` in the power states XAPI allows it in
 * (an operation XAPI allows in no state, like `import`, always fails on the power state).
 */
export function assertVmOperationValid(pool: PoolRecords, vmRef: string, op: string): void {
  const vm = pool.db.get('VM', vmRef)
  const states: readonly PowerState[] = ANY_STATE.has(op)
    ? ['Halted', 'Paused', 'Running', 'Suspended']
    : (STATE_RULES[op] ?? MORE_RULES[op] ?? [])
  const extra: readonly PowerState[] =
    vm['is_a_snapshot'] === true && (op === 'clone' || op === 'copy') ? ['Suspended'] : []
  assertVmOperation(pool, vmRef, op, [...states, ...extra])
}

/**
 * `VM.allowed_operations` as XAPI's update_allowed_operations keeps it: the operations whose
 * pre-checks would pass now (blocked operations excluded, nothing while another runs).
 */
export function vmAllowedOperations(pool: PoolRecords, vmRef: string): string[] {
  const vm = pool.db.get('VM', vmRef)
  if (vm['is_control_domain'] === true) return []
  const allowed: string[] = []
  const isSnapshot = vm['is_a_snapshot'] === true
  for (const [op, states] of STATE_RULES_LIST) {
    const withExtra = isSnapshot && (op === 'clone' || op === 'copy') ? [...states, 'Suspended' as const] : states
    if (refusal(pool, vmRef, vm, op, withExtra) === undefined) allowed.push(op)
  }
  return allowed
}
