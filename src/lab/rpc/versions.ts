/**
 * Older XAPI releases a lab pool can emulate (spec `"xapiVersion": "6.5"`): what its hosts
 * report (API version, `software_version`), which fields and messages that release did not have
 * yet, and how its `/jsonrpc` answers. The lab's database keeps every field of the current
 * release; an emulated release only changes what goes over the wire: its records lack the newer
 * fields, its newer messages (and the getters and setters of newer fields) are unknown, exactly as
 * `MESSAGE_METHOD_UNKNOWN` on a host that never had them.
 *
 * Facts, from xapi-project/xen-api `ocaml/idl/datamodel*.ml`: XenServer 6.5 is the release
 * "creedence", API 2.3 (6.5 SP1 is "cream", API 2.4); lifecycle tags date the fields, e.g.
 * `VM.hardware_platform_version` cream, `VM.has_vendor_device` dundee (7.0),
 * `VM.requires_reboot`/`reference_label` ely (7.1), `VM.is_default_template`,
 * `snapshot_schedule` falcon (7.2), CBT and `VDI.get_nbd_info`/`network.purpose` inverness (7.3),
 * `VM.domain_type` kolkata (7.5), `VM.NVRAM` naples (8.0). The list below covers the classes the
 * lab serves; a field of a class it does not list is taken to be as old as the class.
 *
 * `/jsonrpc` on such a host: XAPI of that era answers it (its handler dates from 2013) but
 * labels the answer `text/xml` and knows only JSON-RPC 1.0, which is why `xen-api`'s transport
 * checks the content type ("content-type is `text/xml` on old hosts where JSON-RPC is
 * unsupported") and falls back to XML-RPC; the lab answers the same way, so clients do too.
 */
import type { Database } from '../db/database.js'
import { LabSetupError } from '../lab-error.js'
import type { WireValue } from '../wire/values.js'

/** A lab pool as far as its release matters (not pool.ts itself: spec.ts, which pool.ts imports, imports this). */
interface LabPool {
  readonly db: Database
}

/** One emulated release. */
interface Release {
  /** what the spec says: `6.5` */
  readonly name: string
  readonly branding: string
  readonly apiMajor: number
  readonly apiMinor: number
  readonly softwareVersion: Readonly<Record<string, string>>
  /** fields of the lab's schema that this release does not have, per class */
  readonly absentFields: ReadonlyMap<string, ReadonlySet<string>>
  /** messages (not field accessors) this release does not have */
  readonly absentMessages: ReadonlySet<string>
  /** whether `/jsonrpc` answers as JSON-RPC (application/json) */
  readonly jsonRpc: boolean
}

/** Fields introduced after 6.5 SP1 (cream, API 2.4), per class, for the classes the lab serves. */
const AFTER_CREAM: Readonly<Record<string, string>> = {
  pool: `policy_no_vendor_device live_patching_disabled igmp_snooping_enabled uefi_certificates is_psr_pending
    tls_verification_enabled repositories client_certificate_auth_enabled client_certificate_auth_name
    repository_proxy_url repository_proxy_username repository_proxy_password migration_compression coordinator_bias
    telemetry_uuid telemetry_frequency telemetry_next_collection last_update_sync update_sync_frequency
    update_sync_day update_sync_enabled cpu_info ha_cluster_stack`,
  host: `ssl_legacy control_domain updates_requiring_reboot updates features iscsi_iqn multipathing PUSBs
    uefi_certificates certificates editions pending_guidances tls_verification_enabled last_software_update
    https_only latest_synced_updates_applied numa_affinity_policy pending_guidances_recommended
    pending_guidances_full last_update_hash guest_VCPUs_params`,
  SR: 'clustered is_tools_sr',
  network: 'purpose managed',
  PIF: 'capabilities igmp_snooping_status sriov_physical_PIF_of sriov_logical_PIF_of PCI',
  VM: `is_default_template VUSBs snapshot_schedule is_vmss_snapshot has_vendor_device requires_reboot
    reference_label domain_type NVRAM pending_guidances pending_guidances_recommended pending_guidances_full
    actions_after_softreboot`,
  VM_metrics: 'hvm nested_virt nomigrate current_domain_type',
  VM_guest_metrics: 'can_use_hotplug_vbd can_use_hotplug_vif PV_drivers_detected',
  VDI: 'is_tools_iso cbt_enabled',
  VIF: `ipv4_configuration_mode ipv4_addresses ipv4_gateway ipv6_configuration_mode ipv6_addresses ipv6_gateway`,
  task: 'backtrace',
  session: 'client_certificate',
}

/** Messages (other than field getters and setters) introduced after 6.5 SP1. */
const MESSAGES_AFTER_CREAM = `VDI.enable_cbt VDI.disable_cbt VDI.data_destroy VDI.list_changed_blocks VDI.get_nbd_info
  VM.set_domain_type VM.set_has_vendor_device VM.import host.mxgpu_vf_setup host.allocate_resources_for_vm
  pool.enable_ssl_legacy pool.disable_ssl_legacy host.set_ssl_legacy`

const words = (text: string): string[] => text.split(/\s+/).filter(word => word !== '')

function fieldTable(extra: Readonly<Record<string, string>> = {}): ReadonlyMap<string, ReadonlySet<string>> {
  const table = new Map<string, Set<string>>()
  for (const source of [AFTER_CREAM, extra])
    for (const [cls, fields] of Object.entries(source))
      table.set(cls, new Set([...(table.get(cls) ?? []), ...words(fields)]))
  return table
}

const SOFTWARE_VERSION_65 = {
  product_version: '6.5.0',
  product_version_text: '6.5',
  product_version_text_short: '6.5',
  platform_name: 'XCP',
  platform_version: '1.9.0',
  product_brand: 'XenServer',
  build_number: '90233c',
  date: '2015-01-07',
  hostname: 'lab',
  xapi: '1.9',
  xen: '4.4.1-xs100346',
  linux: '3.10.0+2',
  xencenter_min: '2.3',
  xencenter_max: '2.3',
  network_backend: 'openvswitch',
  dbv: '2014.1127',
}

/** The releases a spec may name, oldest first. */
const RELEASES: readonly Release[] = [
  {
    name: '6.5',
    branding: 'XenServer 6.5',
    apiMajor: 2,
    apiMinor: 3,
    softwareVersion: SOFTWARE_VERSION_65,
    // hardware_platform_version came with 6.5 SP1 (cream)
    absentFields: fieldTable({ VM: 'hardware_platform_version', host: 'display virtual_hardware_platform_versions' }),
    absentMessages: new Set(words(`${MESSAGES_AFTER_CREAM} host.enable_display host.disable_display`)),
    jsonRpc: false,
  },
  {
    name: '6.5-sp1',
    branding: 'XenServer 6.5 SP1',
    apiMajor: 2,
    apiMinor: 4,
    softwareVersion: { ...SOFTWARE_VERSION_65, build_number: '101c', xencenter_min: '2.4', xencenter_max: '2.4' },
    absentFields: fieldTable(),
    absentMessages: new Set(words(MESSAGES_AFTER_CREAM)),
    jsonRpc: false,
  },
]

/** The names a spec or `XEN_CR_LAB_XAPI_VERSION` may give. */
export const XAPI_VERSIONS: readonly string[] = [...RELEASES.map(r => r.name), 'current']

/** Throws a LabSetupError naming `where` unless `value` is a release the lab emulates. */
export function checkXapiVersion(value: unknown, where: string): void {
  if (typeof value !== 'string' || !XAPI_VERSIONS.includes(value))
    throw new LabSetupError(
      'LAB_SPEC_INVALID',
      `${where}: xapiVersion ${JSON.stringify(value)} is not one the lab emulates (${XAPI_VERSIONS.join(', ')})`,
    )
}

/** The release a database's hosts report, recognised by their `software_version` and API version. */
const cache = new WeakMap<Database, Release | null>()

function releaseOf(db: Database): Release | undefined {
  let release = cache.get(db)
  if (release === undefined) {
    release = null
    for (const [, host] of db.all('host')) {
      const version = (host['software_version'] as Record<string, string> | undefined)?.['product_version']
      release =
        RELEASES.find(
          r =>
            r.softwareVersion['product_version'] === version &&
            host['API_version_major'] === r.apiMajor &&
            host['API_version_minor'] === r.apiMinor,
        ) ?? null
      break
    }
    cache.set(db, release)
  }
  return release ?? undefined
}

/** Makes every host of `db` report `name` (a freshly built pool; a restart keeps it in the database). */
export function emulateRelease(db: Database, name: string): void {
  checkXapiVersion(name, 'lab')
  cache.delete(db)
  const release = RELEASES.find(r => r.name === name)
  if (release === undefined) return
  for (const [ref, host] of [...db.all('host')]) {
    db.update('host', ref, {
      API_version_major: release.apiMajor,
      API_version_minor: release.apiMinor,
      API_version_vendor: 'XenSource',
      software_version: { ...release.softwareVersion, hostname: host['hostname'] as string },
    })
  }
  cache.delete(db)
}

/** `6.5`, `6.5-sp1`, or `current`. */
export function emulatedRelease(db: Database): string {
  return releaseOf(db)?.name ?? 'current'
}

/** Whether the pool's `/jsonrpc` answers JSON-RPC (false on a release from before it was usable). */
export function speaksJsonRpc(pool: LabPool): boolean {
  return releaseOf(pool.db)?.jsonRpc ?? true
}

const ACCESSOR = /^(get|set|add_to|remove_from|add|remove)_(.+)$/

/** Whether method `name` (without `Async.`) exists on the pool's release. */
export function hasMessage(pool: LabPool, name: string): boolean {
  const release = releaseOf(pool.db)
  if (release === undefined) return true
  if (release.absentMessages.has(name)) return false
  const dot = name.indexOf('.')
  const absent = release.absentFields.get(name.slice(0, dot))
  const accessor = ACCESSOR.exec(name.slice(dot + 1))
  if (absent === undefined || accessor === null) return true
  // get_by_uuid, get_record…: not fields; get_X / set_X of a field the release lacks: gone
  return !absent.has(accessor[2]!)
}

type Struct = { readonly [key: string]: WireValue }

function isList(value: WireValue | undefined): value is readonly WireValue[] {
  return Array.isArray(value)
}

function isStruct(value: WireValue | undefined): value is Struct {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && value.constructor === Object
}

function stripRecord(record: WireValue, absent: ReadonlySet<string> | undefined): WireValue {
  if (absent === undefined || !isStruct(record)) return record
  return Object.fromEntries(Object.entries(record).filter(([key]) => !absent.has(key)))
}

/**
 * The result of `method` as the pool's release sends it: records without the fields it did not
 * have (get_record, get_all_records[_where], event snapshots), and `system.listMethods` without
 * the messages it did not have.
 */
export function asReleaseSends(pool: LabPool, method: string, value: WireValue): WireValue {
  const release = releaseOf(pool.db)
  if (release === undefined) return value
  if (method === 'system.listMethods' && isList(value))
    return value.filter(name => typeof name !== 'string' || hasMessage(pool, name.replace(/^Async\./, '')))
  const dot = method.indexOf('.')
  const cls = method.slice(0, dot)
  const message = method.slice(dot + 1)
  if (message === 'get_record') return stripRecord(value, release.absentFields.get(cls))
  if ((message === 'get_all_records' || message === 'get_all_records_where') && isStruct(value)) {
    const absent = release.absentFields.get(cls)
    return Object.fromEntries(Object.entries(value).map(([ref, record]) => [ref, stripRecord(record, absent)]))
  }
  if (cls === 'event' && (message === 'from' || message === 'next')) {
    const events = isStruct(value) ? value['events'] : value
    if (!isList(events)) return value
    const stripped = events.map(event => {
      if (!isStruct(event) || typeof event['class'] !== 'string' || event['snapshot'] === undefined) return event
      // event class names are lower-case (`vm`, `vdi`)
      const cls = [...release.absentFields.keys()].find(name => name.toLowerCase() === event['class'])
      return {
        ...event,
        snapshot: stripRecord(event['snapshot'], cls === undefined ? undefined : release.absentFields.get(cls)),
      }
    })
    return isStruct(value) ? { ...value, events: stripped } : stripped
  }
  return value
}
