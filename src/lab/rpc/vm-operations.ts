/**
 * VM messages that are not setters, as xapi_vm.ml answers them: the operation checks
 * (assert_operation_valid, update_allowed_operations), power-state reset, queries (allowed
 * devices, possible hosts, whether it can boot on a host or is agile), deprecated dummies XAPI
 * keeps (get_cooperative, set_memory_target_live), the messages xapi_vm.ml itself answers with
 * NOT_IMPLEMENTED or MESSAGE_REMOVED, shutdown (clean, then hard), call_plugin and pool_migrate.
 */
import { NULL_REF } from '../db/database.js'
import { xapiFault } from '../fault.js'
import type { LabPool } from '../pool.js'
import type { MethodRegistry } from './registry.js'
import { VM_OPERATIONS } from './generic.js'
import { assertVmOperation, assertVmOperationValid } from './vm-checks.js'
import { createSuspendImage, destroyVdi } from './vdi-methods.js'
import { copyVm, dropSuspendImage, setHalted, setRunning } from './vm-methods.js'

export function addVmOperations(registry: MethodRegistry): void {
  registry.add({
    name: 'VM.assert_operation_valid',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [vm, op]) => {
      pool.db.get('VM', vm as string)
      if (!VM_OPERATIONS.has(op as string))
        throw xapiFault('INTERNAL_ERROR', `Unknown enum value '${op as string}' for vm_operations`)
      assertVmOperationValid(pool, vm as string, op as string)
      return ''
    },
  })
  registry.add({
    name: 'VM.update_allowed_operations',
    params: ['string'],
    async: true,
    handler: ({ pool }, [vm]) => {
      pool.db.get('VM', vm as string)
      pool.db.touch(vm as string)
      for (const vbd of pool.db.related('VBD', 'VM', vm as string)) pool.db.touch(vbd)
      for (const vif of pool.db.related('VIF', 'VM', vm as string)) pool.db.touch(vif)
      return ''
    },
  })
  registry.add({
    name: 'VM.get_boot_record',
    params: ['string'],
    handler: ({ pool }, [vm]) => pool.db.toWire('VM', vm as string),
  })
  // Deprecated dummies that XAPI keeps answering: get_cooperative is `true`, set_memory_target_live does nothing.
  registry.add({
    name: 'VM.get_cooperative',
    params: ['string'],
    async: true,
    handler: ({ pool }, [vm]) => {
      pool.db.get('VM', vm as string)
      return true
    },
  })
  registry.add({
    name: 'VM.set_memory_target_live',
    params: ['string', 'int'],
    async: true,
    handler: ({ pool }, [vm]) => {
      pool.db.get('VM', vm as string)
      return ''
    },
  })
  // XAPI's own xapi_vm.ml answers these with NOT_IMPLEMENTED [name]; set_protection_policy with MESSAGE_REMOVED.
  for (const [name, params] of [
    ['send_sysrq', ['string', 'string']],
    ['send_trigger', ['string', 'string']],
    ['query_services', ['string']],
    ['add_to_VCPUs_params_live', ['string', 'string', 'string']],
  ] as const) {
    registry.add({
      name: `VM.${name}`,
      params,
      async: true,
      handler: () => {
        throw xapiFault('NOT_IMPLEMENTED', name)
      },
    })
  }
  registry.add({
    name: 'VM.set_protection_policy',
    params: ['string', 'string'],
    handler: () => {
      throw xapiFault('MESSAGE_REMOVED')
    },
  })
  registry.add({
    name: 'VM.power_state_reset',
    params: ['string'],
    async: true,
    handler: ({ pool }, [vm]) => {
      const record = pool.db.get('VM', vm as string)
      if (record['is_control_domain'] === true) throw xapiFault('CANNOT_RESET_CONTROL_DOMAIN', vm as string)
      const state = record['power_state'] as string
      if (state === 'Running' || state === 'Paused') {
        // the lab's hosts are all alive and its domains really run: XAPI refuses both cases
        const resident = record['resident_on'] as string
        if (resident === pool.masterRef || pool.isNull(resident)) throw xapiFault('DOMAIN_EXISTS', vm as string)
        throw xapiFault('HOST_IS_LIVE', resident)
      }
      pool.guests.halted(vm as string)
      pool.db.update('VM', vm as string, {
        power_state: 'Halted',
        resident_on: NULL_REF,
        domid: -1,
        suspend_VDI: NULL_REF,
      })
      return ''
    },
  })
  registry.add({
    name: 'VM.get_allowed_VBD_devices',
    params: ['string'],
    handler: ({ pool }, [vm]) => {
      pool.db.get('VM', vm as string)
      const used = new Set(
        pool.db.related('VBD', 'VM', vm as string).map(vbd => pool.db.get('VBD', vbd)['userdevice'] as string),
      )
      return Array.from({ length: 16 }, (_, n) => String(n)).filter(n => !used.has(n))
    },
  })
  registry.add({
    name: 'VM.get_allowed_VIF_devices',
    params: ['string'],
    handler: ({ pool }, [vm]) => {
      pool.db.get('VM', vm as string)
      const used = new Set(
        pool.db.related('VIF', 'VM', vm as string).map(vif => pool.db.get('VIF', vif)['device'] as string),
      )
      return Array.from({ length: 7 }, (_, n) => String(n)).filter(n => !used.has(n))
    },
  })
  registry.add({
    name: 'VM.get_possible_hosts',
    params: ['string'],
    async: true,
    handler: ({ pool }, [vm]) => {
      pool.db.get('VM', vm as string)
      return [...pool.db.all('host')].filter(([, host]) => host['enabled'] === true).map(([ref]) => ref)
    },
  })
  registry.add({
    name: 'VM.assert_can_boot_here',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [vm, host]) => {
      pool.db.get('VM', vm as string)
      pool.db.get('host', host as string)
      assertSrsVisible(pool, vm as string, host as string)
      return ''
    },
  })
  registry.add({
    name: 'VM.compute_memory_overhead',
    params: ['string'],
    async: true,
    handler: ({ pool }, [vm]) => pool.db.get('VM', vm as string)['memory_overhead'] as number,
  })
  registry.add({
    name: 'VM.copy_bios_strings',
    params: ['string', 'string'],
    async: true,
    handler: ({ pool }, [vm, host]) => {
      const strings = pool.db.get('host', host as string)['bios_strings'] as Record<string, string>
      pool.db.get('VM', vm as string)
      pool.db.update('VM', vm as string, { bios_strings: strings })
      return ''
    },
  })
  registry.add({
    name: 'VM.retrieve_wlb_recommendations',
    params: ['string'],
    async: true,
    handler: ({ pool }, [vm]) => {
      pool.db.get('VM', vm as string)
      // WLB is not configured on a lab pool, as on a pool without a WLB server
      throw xapiFault('WLB_NOT_INITIALIZED')
    },
  })
  // xapi_vm.shutdown: a clean shutdown, and a hard one when that is not possible (a paused or
  // suspended VM has no guest to ask)
  registry.add({
    name: 'VM.shutdown',
    params: ['string'],
    async: true,
    handler: async ({ pool }, [vm]) => {
      assertVmOperation(pool, vm as string, 'shutdown', ['Paused', 'Running', 'Suspended'])
      await dropSuspendImage(pool, vm as string)
      pool.db.update('VM', vm as string, { ha_always_run: false })
      setHalted(pool, vm as string)
      return ''
    },
  })
  // xapi_vm_snapshot.checkpoint: a snapshot of a running VM with its memory image, which makes
  // the snapshot Suspended (reverting to it resumes the VM)
  registry.add({
    name: 'VM.checkpoint',
    params: ['string', 'string'],
    async: true,
    handler: async (ctx, [vm, name]) => {
      const { pool } = ctx
      assertVmOperation(pool, vm as string, 'checkpoint', ['Running'])
      // the memory image first: a full SR refuses the checkpoint before any snapshot exists
      const memory = await createSuspendImage(pool, vm as string)
      let snapshot: string
      try {
        snapshot = await copyVm(ctx, vm as string, name as string, 'snapshot', {})
      } catch (error) {
        await destroyVdi(pool, memory).catch(() => undefined)
        throw error
      }
      pool.db.update('VM', snapshot, {
        power_state: 'Suspended',
        suspend_VDI: memory,
        snapshot_info: { 'power-state-at-snapshot': 'Running' },
      })
      return snapshot
    },
  })
  // xapi_vm.suspend / resume / resume_on: the memory goes to a suspend VDI, and comes back from it
  registry.add({
    name: 'VM.suspend',
    params: ['string'],
    async: true,
    handler: async ({ pool }, [vm]) => {
      assertVmOperation(pool, vm as string, 'suspend', ['Running'])
      const memory = await createSuspendImage(pool, vm as string)
      pool.db.update('VM', vm as string, { ha_always_run: false })
      setHalted(pool, vm as string)
      pool.db.update('VM', vm as string, { power_state: 'Suspended', suspend_VDI: memory })
      return ''
    },
  })
  const resume = async (pool: LabPool, vm: string, host: string, paused: boolean): Promise<void> => {
    pool.db.get('host', host)
    assertSrsVisible(pool, vm, host)
    const memory = pool.db.get('VM', vm)['suspend_VDI'] as string
    setRunning(pool, vm, host, paused ? 'Paused' : 'Running')
    pool.db.update('VM', vm, { suspend_VDI: NULL_REF })
    if (!pool.isNull(memory) && pool.db.find('VDI', memory) !== undefined) await destroyVdi(pool, memory)
  }
  registry.add({
    name: 'VM.resume',
    params: ['string', 'bool', 'bool'],
    async: true,
    handler: async ({ pool }, [vm, paused]) => {
      assertVmOperation(pool, vm as string, 'resume', ['Suspended'])
      const affinity = pool.db.get('VM', vm as string)['affinity'] as string
      const host = pool.db.find('host', affinity) !== undefined ? affinity : pool.masterRef
      await resume(pool, vm as string, host, paused === true)
      return ''
    },
  })
  registry.add({
    name: 'VM.resume_on',
    params: ['string', 'string', 'bool', 'bool'],
    async: true,
    handler: async ({ pool }, [vm, host, paused]) => {
      assertVmOperation(pool, vm as string, 'resume_on', ['Suspended'])
      await resume(pool, vm as string, host as string, paused === true)
      return ''
    },
  })
  // xapi_vm.call_plugin: only the guest-agent-operation plugin exists, and its functions need
  // guest features the lab's guests do not advertise (feature-ts2) or a pool setting left off.
  registry.add({
    name: 'VM.call_plugin',
    params: ['string', 'string', 'string', 'map'],
    async: true,
    handler: ({ pool }, [vm, plugin, fn]) => {
      assertVmOperation(pool, vm as string, 'call_plugin', ['Running'])
      if (plugin !== 'guest-agent-operation') throw xapiFault('XENAPI_MISSING_PLUGIN', plugin as string)
      if (fn === 'run-script') throw xapiFault('FEATURE_RESTRICTED')
      const known = fn === 'request-rdp-on' || fn === 'request-rdp-off'
      const message = known
        ? `The requested fn "${fn as string}" of plugin "${plugin}" could not be executed for lack of guest agent control feature.`
        : `The requested fn "${fn as string}" could not be found in plugin "${plugin}".`
      throw xapiFault('XENAPI_PLUGIN_FAILURE', known ? 'failed to execute fn' : 'failed to find fn', message, message)
    },
  })
  registry.add({
    name: 'VM.pool_migrate',
    params: ['string', 'string', 'map'],
    async: true,
    handler: ({ pool }, [vm, host]) => {
      assertVmOperation(pool, vm as string, 'pool_migrate', ['Running'])
      pool.db.get('host', host as string)
      assertSrsVisible(pool, vm as string, host as string)
      pool.db.update('VM', vm as string, { resident_on: host as string })
      return ''
    },
  })
  // Agility.vm_assert_agile: every disk on a properly shared SR, every VIF on a network every host reaches
  registry.add({
    name: 'VM.assert_agile',
    params: ['string'],
    async: true,
    handler: ({ pool }, [vm]) => {
      pool.db.get('VM', vm as string)
      const hosts = [...pool.db.all('host')].map(([ref]) => ref)
      for (const sr of vmSrs(pool, vm as string)) {
        const plugged = new Set(
          pool.db
            .related('PBD', 'SR', sr)
            .map(pbd => pool.db.get('PBD', pbd))
            .filter(pbd => pbd['currently_attached'] === true)
            .map(pbd => pbd['host'] as string),
        )
        if (pool.db.get('SR', sr)['shared'] !== true || hosts.some(h => !plugged.has(h)))
          throw xapiFault('HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED', sr)
      }
      for (const vif of pool.db.related('VIF', 'VM', vm as string)) {
        const network = pool.db.get('VIF', vif)['network'] as string
        const pifs = pool.db.related('PIF', 'network', network).map(pif => pool.db.get('PIF', pif))
        // a network without PIFs is internal to the pool: every host has it
        if (pifs.length === 0) continue
        const reached = new Set(pifs.filter(p => p['currently_attached'] === true).map(p => p['host'] as string))
        if (hosts.some(h => !reached.has(h))) throw xapiFault('HA_CONSTRAINT_VIOLATION_NETWORK_NOT_SHARED', network)
      }
      return ''
    },
  })
}

/** The SRs of a VM's disks. */
function vmSrs(pool: LabPool, vm: string): Set<string> {
  const srs = new Set<string>()
  for (const vbd of pool.db.related('VBD', 'VM', vm)) {
    const vdi = pool.db.get('VBD', vbd)['VDI'] as string
    if (!pool.isNull(vdi)) srs.add(pool.db.get('VDI', vdi)['SR'] as string)
  }
  return srs
}

/** VM_REQUIRES_SR unless `host` has a plugged PBD for every SR of the VM's disks. */
export function assertSrsVisible(pool: LabPool, vm: string, host: string): void {
  for (const sr of vmSrs(pool, vm)) {
    const plugged = pool.db.related('PBD', 'SR', sr).some(pbd => {
      const record = pool.db.get('PBD', pbd)
      return record['host'] === host && record['currently_attached'] === true
    })
    if (!plugged) throw xapiFault('VM_REQUIRES_SR', vm, sr)
  }
}
