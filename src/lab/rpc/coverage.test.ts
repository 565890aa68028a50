/**
 * The lab against the XAPI datamodel: docs/lab-coverage.md is what the registry and
 * datamodel.json say (regenerate with XEN_CR_WRITE_COVERAGE=1), datamodel.json is what the
 * transcript says, every datamodel message exists in the lab, and every setter the lab implements
 * round-trips over real XML-RPC (the xen-api client XO uses) against a started lab: set, then the
 * getter returns the value. Without the setters of this pass the round trip fails with
 * NOT_IMPLEMENTED (e.g. VM.set_domain_type, which XO's delta import calls).
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseXml } from '@vates/xml/parse'
import { xmlRpcParser } from '@vates/xml-rpc/parser'
import { createClient, type Xapi, type XenApiError } from 'xen-api'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempLab } from '../../../test/helpers/lab.js'
import { VM_CREATE_RECORD } from '../../../test/integration/lab-rpc.js'
import type { Lab } from '../start.js'
import { buildApi } from './api.js'
import { labCoverage, renderCoverage, type RegistryProbe } from './coverage.js'
import { DATAMODEL, DATAMODEL_SOURCE, type DatamodelMessage } from './datamodel.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..')
const docPath = join(root, 'docs/lab-coverage.md')
const registry = buildApi()
const probe: RegistryProbe = {
  names: () => registry.names(),
  answer: name => {
    if (!registry.has(name)) return 'absent'
    const def = registry.lookup(name)!
    if (def.notImplemented === true) return 'not-implemented'
    return def.removed === true ? 'removed' : 'implemented'
  },
}

describe('lab coverage of the datamodel', () => {
  it('has datamodel.json as scripts/gen-datamodel.mjs makes it from the transcript', () => {
    // exits 1 (and throws here) when the JSON is stale
    execFileSync(process.execPath, [join(root, 'scripts/gen-datamodel.mjs'), '--check'], { stdio: 'pipe' })
  })

  it('answers every datamodel message (implemented, or NOT_IMPLEMENTED / MESSAGE_REMOVED as XAPI)', () => {
    const missing = Object.entries(DATAMODEL).flatMap(([cls, spec]) =>
      spec.messages.map(m => `${cls}.${m.name}`).filter(name => !registry.has(name)),
    )
    expect(missing).toEqual([])
  })

  it('has docs/lab-coverage.md as the registry and the datamodel make it', () => {
    const doc = renderCoverage(labCoverage(probe), DATAMODEL_SOURCE)
    if (process.env['XEN_CR_WRITE_COVERAGE'] === '1') writeFileSync(docPath, doc)
    const onDisk = readFileSync(docPath, 'utf8')
    expect(
      onDisk,
      'docs/lab-coverage.md is stale: XEN_CR_WRITE_COVERAGE=1 npx vitest run src/lab/rpc/coverage.test.ts',
    ).toBe(doc)
  })
})

// ---------------------------------------------------------------------------------------------
// Every implemented setter over XML-RPC.

const GiB = 1024 ** 3
const MiB = 1024 ** 2
let lab: Lab
let xapi: Xapi

type Rec = Record<string, unknown>

const escapeXml = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
function xmlValue(value: unknown): string {
  if (typeof value === 'string') return `<value>${escapeXml(value)}</value>`
  if (typeof value === 'boolean') return `<value><boolean>${value ? 1 : 0}</boolean></value>`
  if (typeof value === 'number') return `<value><int>${value}</int></value>`
  if (Array.isArray(value)) return `<value><array><data>${value.map(xmlValue).join('')}</data></array></value>`
  const members = Object.entries(value as Rec).map(
    ([k, v]) => `<member><name>${escapeXml(k)}</name>${xmlValue(v)}</member>`,
  )
  return `<value><struct>${members.join('')}</struct></value>`
}

/** session.* over plain XML-RPC: the xen-api client refuses to send those itself. */
async function rawCall(method: string, args: readonly unknown[]): Promise<unknown> {
  const params = [xapi.sessionId, ...args].map(v => `<param>${xmlValue(v)}</param>`).join('')
  const response = await fetch(`${lab.pools[0]!.url}/`, {
    method: 'POST',
    headers: { 'content-type': 'text/xml' },
    body: `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>${params}</params></methodCall>`,
  })
  const root = parseXml(await response.text())
  if (typeof root !== 'object') throw new Error(`${method}: not an XML-RPC answer`)
  const parsed = xmlRpcParser.parse(root) as { params: [Rec] }
  const result = parsed.params[0]
  if (result['Status'] === 'Success') return result['Value']
  const [code, ...rest] = result['ErrorDescription'] as string[]
  throw Object.assign(new Error(code), { code, params: rest })
}

const call = <T = unknown>(method: string, ...args: unknown[]): Promise<T> =>
  (method.startsWith('session.') ? rawCall(method, args) : xapi.call(method, ...args)) as Promise<T>

async function caught(promise: Promise<unknown>): Promise<XenApiError> {
  try {
    await promise
  } catch (error) {
    return error as XenApiError
  }
  throw new Error('expected the call to fail')
}

/** Values as the xen-api client returns them over XML-RPC: ints as strings, datetimes as Dates. */
function normal(value: unknown): unknown {
  if (typeof value === 'number') return String(value)
  if (value instanceof Date) return value.toISOString()
  const xapiDate = typeof value === 'string' ? /^(\d{4})(\d{2})(\d{2})T(\d{2}:\d{2}:\d{2})Z$/.exec(value) : null
  if (xapiDate !== null) return `${xapiDate[1]}-${xapiDate[2]}-${xapiDate[3]}T${xapiDate[4]}.000Z`
  if (Array.isArray(value)) return value.map(normal)
  if (typeof value === 'object' && value !== null)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normal(v)]))
  return value
}

beforeAll(async () => {
  lab = await startTempLab(
    {
      pools: [
        {
          name: 'p',
          users: [{ user: 'root', password: 'pw' }],
          hosts: ['a', 'b'],
          srs: [{ name: 'sr', type: 'nfs', shared: true }, { name: 'other sr' }],
          networks: [{ name: 'net' }],
          vms: [
            { name: 'on', powerState: 'Running', disks: [{ size: '4 MiB' }], guest: { tools: 0 } },
            { name: 'off', disks: [{ size: '4 MiB', filled: '2 MiB', seed: 3 }], networks: ['net'] },
          ],
        },
      ],
    },
    { loginDelayMs: 0 },
  )
  const pool = lab.pools[0]!
  xapi = createClient({
    url: pool.url,
    auth: { user: pool.user, password: pool.password },
    transport: 'xml-rpc',
    watchEvents: false,
  })
  await xapi.connect()
}, 60_000)

afterAll(async () => {
  await xapi?.disconnect()
  await lab?.stop()
})

let found: Promise<Record<string, string>> | undefined
/** The object of each class the setters act on (looked up once: the setters rename them). */
function targets(): Promise<Record<string, string>> {
  found ??= findTargets()
  return found
}

async function findTargets(): Promise<Record<string, string>> {
  const first = async (cls: string, keep: (r: Rec) => boolean = () => true): Promise<string> => {
    const all = await call<Record<string, Rec>>(`${cls}.get_all_records`)
    const found = Object.entries(all).find(([, r]) => keep(r))
    if (found === undefined) throw new Error(`no ${cls} to set`)
    return found[0]
  }
  const off = (await call<string[]>('VM.get_by_name_label', 'off'))[0]!
  const offRecord = await call<Rec>('VM.get_record', off)
  const vbd = (offRecord['VBDs'] as string[])[0]!
  const on = (await call<string[]>('VM.get_by_name_label', 'on'))[0]!
  // the running VM's tools report at once (tools: 0): wait for its guest metrics through events
  let token = ''
  let metrics = await call<string>('VM.get_guest_metrics', on)
  while (metrics === 'OpaqueRef:NULL') {
    token = (await call<{ token: string }>('event.from', [`vm/${on}`], token, 30)).token
    metrics = await call<string>('VM.get_guest_metrics', on)
  }
  const pool = await first('pool')
  return {
    pool,
    host: await call<string>('pool.get_master', pool),
    SR: await first('SR', r => r['name_label'] === 'sr'),
    PBD: await first('PBD'),
    network: await first('network', r => r['name_label'] === 'net'),
    PIF: await first('PIF'),
    VM: off,
    VDI: await call<string>('VBD.get_VDI', vbd),
    VBD: vbd,
    VIF: (offRecord['VIFs'] as string[])[0]!,
    task: await call<string>('task.create', 'coverage', ''),
    session: xapi.sessionId,
    VM_guest_metrics: metrics,
    'running VM': on,
  }
}

/** Classes whose objects the lab never makes: their setters meet HANDLE_INVALID, as on a host without any. */
const NO_OBJECTS = new Set(['VM_metrics', 'console'])

/** Values that a field's type alone does not give: enums, refs, values the checks accept. */
function valueFor(cls: string, message: DatamodelMessage, field: string, t: Record<string, string>): unknown {
  const key = `${cls}.${message.name}`
  const special: Record<string, unknown> = {
    'VM.set_actions_after_crash': 'preserve',
    'VM.set_actions_after_shutdown': 'restart',
    'VM.set_actions_after_reboot': 'destroy',
    'VM.set_actions_after_softreboot': 'destroy',
    'VM.set_domain_type': 'pv',
    'VM.set_HVM_boot_policy': 'BIOS order',
    'VM.set_ha_restart_priority': 'best-effort',
    'VM.set_VCPUs_max': 4,
    'VM.set_VCPUs_at_startup': 2,
    'VM.set_HVM_shadow_multiplier': 2.5,
    'VM.set_memory_dynamic_max': String(3 * GiB),
    'VM.set_memory_dynamic_min': String(512 * MiB),
    'VM.set_memory_static_max': String(5 * GiB),
    'VM.set_memory_static_min': String(128 * MiB),
    'VM.set_affinity': t['host'],
    'VM.set_suspend_SR': t['SR'],
    'VM.set_appliance': 'OpaqueRef:NULL',
    'VM.set_snapshot_schedule': 'OpaqueRef:NULL',
    'VM.set_bios_strings': { 'bios-vendor': 'Lab BIOS' },
    'VBD.set_mode': 'RO',
    'VBD.set_type': 'Floppy',
    'VBD.set_userdevice': '7',
    'VIF.set_locking_mode': 'locked',
    'VIF.set_ipv4_allowed': ['10.0.0.1'],
    'VIF.add_ipv4_allowed': '10.0.0.2',
    'VIF.remove_ipv4_allowed': '10.0.0.1',
    'VIF.set_ipv6_allowed': ['fd00::1'],
    'VIF.add_ipv6_allowed': 'fd00::2',
    'VIF.remove_ipv6_allowed': 'fd00::1',
    'network.set_default_locking_mode': 'disabled',
    'network.set_MTU': 9000,
    'VDI.set_on_boot': 'reset',
    'VDI.set_snapshot_of': t['VDI'],
    'VDI.set_metadata_of_pool': t['pool'],
    // the xen-api client sends datetimes as XAPI's strings (a Date would go out as an empty struct)
    'VDI.set_snapshot_time': '20241103T10:20:30Z',
    'VDI.set_virtual_size': String(6 * MiB),
    'VDI.set_physical_utilisation': String(2 * MiB),
    'SR.set_physical_size': String(64 * GiB),
    'SR.set_virtual_allocation': String(5 * MiB),
    'SR.set_physical_utilisation': String(3 * MiB),
    'host.set_display': 'disabled',
    'host.set_suspend_image_sr': t['SR'],
    'host.set_crash_dump_sr': t['SR'],
    'pool.set_default_SR': t['SR'],
    'pool.set_suspend_image_SR': t['SR'],
    'pool.set_crash_dump_SR': t['SR'],
    'task.set_status': 'success',
    'VM.set_blocked_operations': { pause: 'coverage' },
    'VM.add_to_blocked_operations': 'unpause',
    'VM.remove_from_blocked_operations': 'unpause',
    'PIF.set_primary_address_type': 'IPv6',
    'network.add_purpose': 'nbd',
    'network.remove_purpose': 'nbd',
  }
  if (key in special) return special[key]
  const type = DATAMODEL[cls]!.fields.find(f => f.name === field)!.type
  if (message.name.startsWith('set_')) {
    switch (type) {
      case 'i':
        return 7
      case 'f':
        return 1.5
      case 'b':
        return undefined // toggled from the current value
      case 'm':
        return { coverage: `${cls}.${field}` }
      case 'ss':
        return ['coverage-a', 'coverage-b']
      default:
        return `coverage ${field}`
    }
  }
  // add_/remove_ of a set, add_to_/remove_from_ of a map: the key or item
  return message.name.startsWith('add_to_') || message.name.startsWith('remove_from_') ? 'coverage-key' : 'coverage-c'
}

/** Setters the lab implements and that succeed on an object in its normal state. */
function implementedSetters(): [cls: string, message: DatamodelMessage][] {
  return Object.entries(DATAMODEL).flatMap(([cls, spec]) =>
    spec.messages
      .filter(m => m.kind === 'setter' && probe.answer(`${cls}.${m.name}`) === 'implemented')
      .map(m => [cls, m] as [string, DatamodelMessage]),
  )
}

/** Set to a test value and back, so that the setters after them still find the object usable. */
const RESTORE = new Set([
  'VM.set_is_a_template',
  'VDI.set_managed',
  'VDI.set_read_only',
  'VDI.set_missing',
  'VDI.set_on_boot',
  'VDI.set_is_a_snapshot',
  'VDI.set_snapshot_of',
  'VBD.set_mode',
  'SR.set_shared',
  'PIF.set_disallow_unplug',
  'host.set_address',
  'host.set_hostname',
])

/** Refused by XAPI's own precondition on these objects: the error it gives instead. */
const REFUSED: Record<string, string> = {
  // the VM is halted, not suspended (xapi_vm.set_suspend_VDI)
  'VM.set_suspend_VDI': 'VM_BAD_POWER_STATE',
  // the VMPR feature was removed (xapi_vm.set_protection_policy)
  'VM.set_protection_policy': 'MESSAGE_REMOVED',
}

describe('every implemented setter over XML-RPC', () => {
  it('sets and reads back each field (or meets the precondition XAPI checks)', async () => {
    const t = await targets()
    // room for every memory setter: static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max
    await call('VM.set_memory_limits', t['VM'], String(256 * MiB), String(4 * GiB), String(GiB), String(2 * GiB))
    const setters = implementedSetters()
    expect(setters.length).toBeGreaterThan(150)
    const checked: string[] = []
    for (const [cls, message] of setters) {
      const name = `${cls}.${message.name}`
      const field = message.field!
      if (NO_OBJECTS.has(cls)) {
        const args = message.params.slice(1).map(p => (p.type === 'map' ? {} : p.type === 'set' ? [] : 'x'))
        const error = await caught(call(name, 'OpaqueRef:NULL', ...args))
        expect([name, error.code]).toEqual([name, 'HANDLE_INVALID'])
        checked.push(name)
        continue
      }
      const ref = t[cls]
      expect(ref, `an object of class ${cls}`).toBeDefined()
      const get = (): Promise<unknown> => call(`${cls}.get_${field}`, ref)
      if (name in REFUSED) {
        const value = message.params[1]?.type === 'string' ? 'OpaqueRef:NULL' : undefined
        const error = await caught(call(name, ref, value))
        expect([name, error.code]).toEqual([name, REFUSED[name]])
        checked.push(name)
        continue
      }
      let value = valueFor(cls, message, field, t)
      if (name === 'VM.set_ha_always_run') {
        // deprecated: XAPI turns it into the restart priority; the field follows when the VM runs
        await call(name, ref, true)
        expect(await call('VM.get_ha_restart_priority', ref)).toBe('restart')
      } else if (message.name.startsWith('set_')) {
        const original = await get()
        if (value === undefined) value = !original
        await call(name, ref, value)
        const read = await get()
        if (name === 'VM.set_bios_strings') expect(read).toMatchObject(value as Rec)
        else expect([name, normal(read)]).toEqual([name, normal(value)])
        if (RESTORE.has(name)) await call(name, ref, original)
      } else if (message.name.startsWith('add_to_')) {
        await call(name, ref, value, 'coverage-value')
        expect([name, (await get()) as Rec]).toEqual([
          name,
          expect.objectContaining({ [value as string]: 'coverage-value' }),
        ])
      } else if (message.name.startsWith('remove_from_')) {
        await call(name, ref, value)
        expect([name, Object.keys((await get()) as Rec)]).toEqual([name, expect.not.arrayContaining([value])])
      } else if (message.name.startsWith('add_')) {
        await call(name, ref, value)
        expect([name, (await get()) as string[]]).toEqual([name, expect.arrayContaining([value])])
      } else {
        await call(name, ref, value)
        expect([name, (await get()) as string[]]).toEqual([name, expect.not.arrayContaining([value])])
      }
      checked.push(name)
    }
    expect(checked).toEqual(setters.map(([cls, m]) => `${cls}.${m.name}`))
  }, 120_000)

  it('refuses what XAPI refuses: VCPUs above the maximum, a running VM, an unknown enum', async () => {
    const t = await targets()
    const off = t['VM']!
    const max = Number(await call('VM.get_VCPUs_max', off))
    const tooMany = await caught(call('VM.set_VCPUs_at_startup', off, max + 1))
    expect([tooMany.code, tooMany.params]).toEqual([
      'INVALID_VALUE',
      ['VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max', String(max + 1)],
    ])
    const on = t['running VM']!
    for (const [method, value] of [
      ['VM.set_VCPUs_max', 8],
      ['VM.set_HVM_shadow_multiplier', 2],
      ['VM.set_has_vendor_device', true],
      ['VM.set_memory_static_max', String(8 * GiB)],
    ] as const) {
      const error = await caught(call(method, on, value))
      expect([method, error.code, error.params?.[2]]).toEqual([method, 'VM_BAD_POWER_STATE', 'running'])
    }
    const badEnum = await caught(call('VM.set_actions_after_crash', off, 'explode'))
    expect(badEnum.code).toBe('INTERNAL_ERROR')
    const unspecified = await caught(call('VM.set_domain_type', off, 'unspecified'))
    expect([unspecified.code, unspecified.params]).toEqual(['INVALID_VALUE', ['domain_type', 'unspecified']])
    // set_domain_type and set_HVM_boot_policy keep each other in step, as xapi_vm.ml does
    await call('VM.set_domain_type', off, 'hvm')
    expect(await call('VM.get_HVM_boot_policy', off)).toBe('BIOS order')
    await call('VM.set_HVM_boot_policy', off, '')
    expect(await call('VM.get_domain_type', off)).toBe('pv')
  })

  it('answers NOT_IMPLEMENTED for a datamodel message the lab does not carry out, after the usual checks', async () => {
    const t = await targets()
    const error = await caught(call('host.evacuate', t['host']))
    expect([error.code, error.params]).toEqual(['NOT_IMPLEMENTED', ['evacuate']])
    const count = await caught(call('host.evacuate'))
    expect(count.code).toBe('MESSAGE_PARAMETER_COUNT_MISMATCH')
    const removed = await caught(call('VDI.resize_online', t['VDI'], 8 * MiB))
    expect(removed.code).toBe('MESSAGE_REMOVED')
  })

  it("resolves every disk's sm_config vhd-parent to a hidden base-copy VDI, and drops it when SM would coalesce", async () => {
    const t = await targets()
    const vdi = t['VDI']!
    const snapshot = await call<string>('VDI.snapshot', vdi, {})
    const parentUuid = (await call<Record<string, string>>('VDI.get_sm_config', vdi))['vhd-parent']!
    const parent = await call<string>('VDI.get_by_uuid', parentUuid)
    expect(await call<Rec>('VDI.get_record', parent)).toMatchObject({
      managed: false,
      read_only: true,
      name_label: 'base copy',
    })
    const sr = await call<string>('VDI.get_SR', vdi)
    expect(await call<string[]>('SR.get_VDIs', sr)).toContain(parent)
    const refused = await caught(call('VDI.destroy', parent))
    expect([refused.code, refused.params]).toEqual(['VDI_NOT_MANAGED', [parent]])
    // the snapshot gone, the base copy has a single child: coalesced, no longer listed
    await call('VDI.destroy', snapshot)
    expect(await call<string[]>('SR.get_VDIs', sr)).not.toContain(parent)
    expect((await call<Record<string, string>>('VDI.get_sm_config', vdi))['vhd-parent']).toBeUndefined()
  })

  it('keeps one base copy under a disk snapshotted and rotated again and again, as SM coalesces the chain below it', async () => {
    const t = await targets()
    const vdi = t['VDI']!
    const sr = await call<string>('VDI.get_SR', vdi)
    const hidden = async (): Promise<string[]> => {
      const out: string[] = []
      for (const ref of await call<string[]>('SR.get_VDIs', sr))
        if (!(await call<boolean>('VDI.get_managed', ref))) out.push(ref)
      return out
    }
    let previous = await call<string>('VDI.snapshot', vdi, {})
    for (let i = 0; i < 4; i++) {
      const next = await call<string>('VDI.snapshot', vdi, {})
      await call('VDI.destroy', previous)
      previous = next
    }
    const copies = await hidden()
    expect(copies).toHaveLength(1)
    const copy = await call<Rec>('VDI.get_record', copies[0])
    // the live disk and the last snapshot grow from it; nothing is below it any more
    expect((await call<Record<string, string>>('VDI.get_sm_config', vdi))['vhd-parent']).toBe(copy['uuid'])
    expect((copy['sm_config'] as Record<string, string>)['vhd-parent']).toBeUndefined()
    await call('VDI.destroy', previous)
    expect(await hidden()).toEqual([])
  })

  it('keeps messages as xapi_message.ml: none at first, then created for an object, read by object and time, destroyed', async () => {
    const t = await targets()
    expect(await call('message.get_all_records')).toEqual({})
    const vmUuid = await call<string>('VM.get_uuid', t['VM'])
    const before = '20000101T00:00:00Z'
    const ref = await call<string>('message.create', 'COVERAGE', 3, 'VM', vmUuid, 'body')
    expect(await call<Rec>('message.get_record', ref)).toMatchObject({ name: 'COVERAGE', cls: 'VM', obj_uuid: vmUuid })
    expect(Object.keys(await call<Rec>('message.get', 'VM', vmUuid, before))).toEqual([ref])
    expect(Object.keys(await call<Rec>('message.get_since', before))).toEqual([ref])
    const unknown = await caught(call('message.create', 'X', 1, 'VM', 'no-such-uuid', ''))
    expect(unknown.code).toBe('UUID_INVALID')
    await call('message.destroy', ref)
    expect(await call('message.get_all')).toEqual([])
  })

  it('carries out the other messages it implements as XAPI does (migrate, agility, plugins, shutdown, IP setup)', async () => {
    const t = await targets()
    const on = t['running VM']!
    const other = (await call<string[]>('host.get_all')).find(h => h !== t['host'])!
    await call('VM.assert_agile', on)
    await call('VM.pool_migrate', on, other, {})
    expect(await call('VM.get_resident_on', on)).toBe(other)
    const plugin = await caught(call('VM.call_plugin', on, 'no-such-plugin', 'fn', {}))
    expect([plugin.code, plugin.params]).toEqual(['XENAPI_MISSING_PLUGIN', ['no-such-plugin']])
    const checkpoint = await call<string>('VM.checkpoint', on, 'coverage checkpoint')
    const memory = await call<string>('VM.get_suspend_VDI', checkpoint)
    expect([await call('VM.get_power_state', checkpoint), await call('VDI.get_type', memory)]).toEqual([
      'Suspended',
      'suspend',
    ])
    // suspend keeps the memory in a suspend VDI; resume brings it back and drops the image
    await call('VM.suspend', on)
    const image = await call<string>('VM.get_suspend_VDI', on)
    expect([await call('VM.get_power_state', on), await call('VDI.get_type', image)]).toEqual(['Suspended', 'suspend'])
    await call('VM.resume', on, false, false)
    expect([await call('VM.get_power_state', on), await call('VM.get_suspend_VDI', on)]).toEqual([
      'Running',
      'OpaqueRef:NULL',
    ])
    expect((await caught(call('VDI.get_record', image))).code).toBe('HANDLE_INVALID')
    await call('VM.shutdown', on)
    expect(await call('VM.get_power_state', on)).toBe('Halted')

    const vif = t['VIF']!
    await call('VIF.configure_ipv4', vif, 'Static', '10.0.0.5/24', '10.0.0.1')
    expect(await call<Rec>('VIF.get_record', vif)).toMatchObject({
      ipv4_configuration_mode: 'Static',
      ipv4_addresses: ['10.0.0.5/24'],
      ipv4_gateway: '10.0.0.1',
    })
    const noPrefix = await caught(call('VIF.configure_ipv4', vif, 'Static', '10.0.0.5', ''))
    expect(noPrefix.code).toBe('INVALID_IP_ADDRESS_SPECIFIED')

    const pifs = await call<Record<string, Rec>>('PIF.get_all_records')
    const [management] = Object.entries(pifs).find(([, p]) => p['management'] === true)!
    const unplug = await caught(call('PIF.unplug', management))
    expect([unplug.code, unplug.params]).toEqual(['PIF_IS_MANAGEMENT_INTERFACE', [management]])
    await call('PIF.reconfigure_ip', management, 'Static', '10.9.8.7', '255.0.0.0', '', '')
    expect(await call('PIF.get_IP', management)).toBe('10.9.8.7')

    // VM.create keeps the record's other_config (adding a mac_seed) and tags, as xapi_vm.create does
    const created = await call<string>('VM.create', {
      ...VM_CREATE_RECORD,
      other_config: { 'xo:backup:job': 'j1' },
      tags: ['replica'],
    })
    const made = await call<Rec>('VM.get_record', created)
    expect(made['tags']).toEqual(['replica'])
    expect(made['other_config']).toMatchObject({ 'xo:backup:job': 'j1' })
    expect(typeof (made['other_config'] as Record<string, string>)['mac_seed']).toBe('string')

    expect(await call<string[]>('host.list_methods')).toContain('VM.set_domain_type')
    // root logs in as the local superuser: no external subjects
    expect(await call('session.get_all_subject_identifiers')).toEqual([])
  })
})
