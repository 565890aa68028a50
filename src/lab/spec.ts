/**
 * The lab spec: which pools, hosts, SRs, networks, VMs (with disks: size, how much is filled,
 * seed of the deterministic content; what their guest does once started) and users to
 * simulate, plus faults to arm at start. Sizes are bytes or strings with a binary unit
 * (`"2 TiB"`, `"64MiB"`).
 */
import { readFile } from 'node:fs/promises'
import { LabSetupError } from './lab-error.js'
import { validateFault, type LabFault } from './faults.js'
import { checkXapiVersion } from './rpc/versions.js'

/** A VM disk: virtual size, bytes of deterministic data from offset 0, seed, SR. */
export interface LabDiskSpec {
  readonly name?: string
  readonly size: number | string
  /** bytes of deterministic guest data from offset 0 (default 0) */
  readonly filled?: number | string
  readonly seed?: number
  /** SR name (default: the pool's default SR) */
  readonly sr?: string
}

/**
 * The guest's health-check script (XO's `example.sh`): at boot, if it finds `planned` in
 * `vm-data/xo-backup-health-check`, it writes its verdict there.
 */
export interface LabHealthCheckSpec {
  readonly result: 'success' | 'failure'
  /** written into `vm-data/xo-backup-health-check-error` with a failure */
  readonly error?: string
  /** ms from the guest tools reporting to the verdict (default 0); meanwhile the key reads `running` */
  readonly delayMs?: number
}

/** What a VM's guest does once the VM starts. */
export interface LabGuestSpec {
  /**
   * ms from the start until the guest tools report (a `VM_guest_metrics` object appears), or
   * `"never"` for a guest without tools; default 500
   */
  readonly tools?: number | 'never'
  /** the guest's health-check script; without one, `planned` stays `planned` */
  readonly healthCheck?: LabHealthCheckSpec
}

/** A VM of a lab pool. */
export interface LabVmSpec {
  readonly name: string
  readonly description?: string
  readonly powerState?: 'Running' | 'Halted'
  readonly memory?: number | string
  readonly vcpus?: number
  readonly tags?: readonly string[]
  readonly otherConfig?: Readonly<Record<string, string>>
  readonly blockedOperations?: Readonly<Record<string, string>>
  readonly disks?: readonly LabDiskSpec[]
  /** network names, one VIF each */
  readonly networks?: readonly string[]
  /** what its guest does; travels with its snapshots, copies and replicas (README, "The lab") */
  readonly guest?: LabGuestSpec
  /** start order: `VM.order` (default 0) and `VM.start_delay` in seconds (default 0) */
  readonly order?: number
  readonly startDelay?: number
  /** `VM.ha_restart_priority` (default "", HA off), e.g. "restart" or "best-effort" */
  readonly haRestartPriority?: string
}

/** An SR of a lab pool. */
export interface LabSrSpec {
  readonly name: string
  /** SR type (default `ext`) */
  readonly type?: string
  readonly size?: number | string
  /** shared SRs have a PBD on every host; others only on `host` (default: the master) */
  readonly shared?: boolean
  readonly host?: string
}

/** A network of a lab pool, optionally a VLAN. */
export interface LabNetworkSpec {
  readonly name: string
  /** VLAN tag: the network gets VLAN PIFs (`eth0.<vlan>`) on every host */
  readonly vlan?: number
  readonly mtu?: number
  readonly bridge?: string
  /**
   * `network.purpose`: `nbd` (NBD over TLS) or `insecure_nbd` (NBD without TLS), never both in
   * one pool. When no network of the pool has a purpose, the management network (the first one,
   * when untagged: its PIFs hold the host addresses) gets `nbd`; `[]` on it turns NBD off.
   */
  readonly purpose?: readonly NetworkPurpose[]
}

/** The `network_purpose` enum. */
export type NetworkPurpose = 'nbd' | 'insecure_nbd'

/** One simulated pool. */
export interface LabPoolSpec {
  readonly name: string
  /** host names (default one host, `<pool>-host1`); the first is the master */
  readonly hosts?: readonly string[]
  /** default one user `root` with a generated password */
  readonly users?: readonly { readonly user: string; readonly password?: string }[]
  readonly srs?: readonly LabSrSpec[]
  readonly defaultSr?: string
  readonly networks?: readonly LabNetworkSpec[]
  readonly vms?: readonly LabVmSpec[]
  readonly faults?: readonly LabFault[]
  /**
   * the XAPI release the pool emulates: `"6.5"` (XenServer 6.5, API 2.3: XML-RPC only, none of
   * the later fields and messages), `"6.5-sp1"` (API 2.4) or `"current"` (default)
   */
  readonly xapiVersion?: string
}

/** A whole lab: its pools, and what the guest of a VM does when its own spec says nothing. */
export interface LabSpec {
  readonly pools: readonly LabPoolSpec[]
  readonly guest?: LabGuestSpec
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
}

/** Bytes from a number or a string such as `"2 TiB"`; throws a one-line error naming `what`. */
export function parseSize(value: number | string, what: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value
  const match = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value) : null
  const factor = match === null ? undefined : UNITS[match[2]!.toLowerCase()]
  if (match === null || factor === undefined)
    throw new LabSetupError(
      'LAB_SPEC_INVALID',
      `${what}: ${JSON.stringify(value)} is not a size; use bytes or e.g. "64 MiB"`,
    )
  return Math.round(Number(match[1]) * factor)
}

/** The spec `xen-cr lab` uses without `--spec`: a source pool with a few small VMs, a target pool with an empty SR. */
export const DEFAULT_SPEC: LabSpec = {
  pools: [
    {
      name: 'source',
      hosts: ['source-host1', 'source-host2'],
      srs: [{ name: 'Shared storage', type: 'nfs', size: '1 TiB', shared: true }],
      networks: [{ name: 'Pool-wide network associated with eth0' }, { name: 'VLAN 42', vlan: 42 }],
      vms: [
        {
          name: 'web-01',
          powerState: 'Running',
          tags: ['web'],
          disks: [{ size: '64 MiB', filled: '16 MiB', seed: 1 }],
          networks: ['Pool-wide network associated with eth0'],
        },
        {
          name: 'db-01',
          powerState: 'Running',
          tags: ['db'],
          disks: [
            { size: '128 MiB', filled: '32 MiB', seed: 2 },
            { name: 'db-01 data', size: '32 MiB', filled: '8 MiB', seed: 3 },
          ],
          networks: ['Pool-wide network associated with eth0', 'VLAN 42'],
        },
        { name: 'idle-01', powerState: 'Halted', disks: [{ size: '16 MiB', filled: '4 MiB', seed: 4 }] },
      ],
    },
    {
      name: 'target',
      hosts: ['target-host1'],
      srs: [{ name: 'Replica storage', type: 'ext', size: '2 TiB' }],
      networks: [{ name: 'Pool-wide network associated with eth0' }],
    },
  ],
}

function fail(message: string): never {
  throw new LabSetupError('LAB_SPEC_INVALID', message)
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/

const isDelay = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

/** Checks a guest setting (spec or control API); throws a LabSetupError naming `where`. */
export function validateGuest(value: unknown, where: string): LabGuestSpec {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${where}: guest must be an object`)
  const guest = value as Record<string, unknown>
  for (const key of Object.keys(guest))
    if (key !== 'tools' && key !== 'healthCheck') fail(`${where}: guest has an unknown key ${JSON.stringify(key)}`)
  if (guest['tools'] !== undefined && guest['tools'] !== 'never' && !isDelay(guest['tools']))
    fail(`${where}: guest tools must be a delay in ms or "never", not ${JSON.stringify(guest['tools'])}`)
  const check = guest['healthCheck']
  if (check !== undefined) {
    if (typeof check !== 'object' || check === null) fail(`${where}: guest healthCheck must be an object`)
    const { result, error, delayMs } = check as Record<string, unknown>
    if (result !== 'success' && result !== 'failure')
      fail(`${where}: guest healthCheck result must be "success" or "failure", not ${JSON.stringify(result)}`)
    if (error !== undefined && typeof error !== 'string') fail(`${where}: guest healthCheck error must be a string`)
    if (delayMs !== undefined && !isDelay(delayMs)) fail(`${where}: guest healthCheck delayMs must be a delay in ms`)
  }
  return guest
}

/** Checks a parsed spec; throws a LabSetupError naming the first problem. */
export function validateSpec(value: unknown, file?: string): LabSpec {
  const where = file === undefined ? 'lab spec' : `lab spec ${file}`
  if (typeof value !== 'object' || value === null || !Array.isArray((value as { pools?: unknown }).pools))
    fail(`${where}: needs a "pools" array`)
  const spec = value as LabSpec
  if (spec.pools.length === 0) fail(`${where}: "pools" is empty`)
  if (spec.guest !== undefined) validateGuest(spec.guest, where)
  const names = new Set<string>()
  for (const pool of spec.pools) {
    if (typeof pool.name !== 'string' || !NAME.test(pool.name))
      fail(`${where}: pool name ${JSON.stringify(pool.name)} must be letters, digits, '.', '_' or '-'`)
    if (names.has(pool.name)) fail(`${where}: pool ${pool.name} appears twice`)
    names.add(pool.name)
    const srNames = new Set((pool.srs ?? []).map(sr => sr.name))
    const networkNames = new Set((pool.networks ?? []).map(n => n.name))
    const hostNames = new Set(pool.hosts ?? [`${pool.name}-host1`])
    if (pool.hosts !== undefined && (pool.hosts.length === 0 || hostNames.size !== pool.hosts.length))
      fail(`${where}: pool ${pool.name}: hosts must be a non-empty list of distinct names`)
    for (const sr of pool.srs ?? []) {
      if (typeof sr.name !== 'string') fail(`${where}: pool ${pool.name}: an SR has no name`)
      if (sr.size !== undefined) parseSize(sr.size, `pool ${pool.name} SR ${sr.name} size`)
      if (sr.host !== undefined && !hostNames.has(sr.host))
        fail(`${where}: pool ${pool.name} SR ${sr.name}: unknown host ${sr.host}`)
    }
    const purposes = new Set<unknown>()
    for (const network of pool.networks ?? []) {
      if (network.purpose === undefined) continue
      if (!Array.isArray(network.purpose))
        fail(`${where}: pool ${pool.name} network ${network.name}: purpose must be a list`)
      for (const purpose of network.purpose as unknown[]) {
        if (purpose !== 'nbd' && purpose !== 'insecure_nbd')
          fail(`${where}: pool ${pool.name} network ${network.name}: unknown purpose ${JSON.stringify(purpose)}`)
        purposes.add(purpose)
      }
    }
    // XAPI's NETWORK_INCOMPATIBLE_PURPOSES: a pool's NBD is all TLS or all plain
    if (purposes.size > 1) fail(`${where}: pool ${pool.name}: networks cannot mix the nbd and insecure_nbd purposes`)
    if (pool.defaultSr !== undefined && !srNames.has(pool.defaultSr))
      fail(`${where}: pool ${pool.name}: defaultSr ${pool.defaultSr} is not one of its SRs`)
    for (const vm of pool.vms ?? []) {
      if (typeof vm.name !== 'string') fail(`${where}: pool ${pool.name}: a VM has no name`)
      if (vm.memory !== undefined) parseSize(vm.memory, `pool ${pool.name} VM ${vm.name} memory`)
      for (const disk of vm.disks ?? []) {
        const size = parseSize(disk.size, `pool ${pool.name} VM ${vm.name} disk size`)
        if (disk.filled !== undefined && parseSize(disk.filled, `pool ${pool.name} VM ${vm.name} disk filled`) > size)
          fail(`${where}: pool ${pool.name} VM ${vm.name}: a disk is filled beyond its size`)
        if (srNames.size === 0) fail(`${where}: pool ${pool.name} VM ${vm.name} has disks but the pool has no SR`)
        if (disk.sr !== undefined && !srNames.has(disk.sr))
          fail(`${where}: pool ${pool.name} VM ${vm.name}: unknown SR ${disk.sr}`)
      }
      for (const network of vm.networks ?? [])
        if (!networkNames.has(network)) fail(`${where}: pool ${pool.name} VM ${vm.name}: unknown network ${network}`)
      if (vm.guest !== undefined) validateGuest(vm.guest, `${where}: pool ${pool.name} VM ${vm.name}`)
    }
    if (pool.xapiVersion !== undefined) checkXapiVersion(pool.xapiVersion, `${where}: pool ${pool.name}`)
    for (const fault of pool.faults ?? []) {
      try {
        validateFault(fault)
      } catch (error) {
        fail(`${where}: pool ${pool.name}: ${(error as Error).message}`)
      }
    }
  }
  return spec
}

/** Reads and validates a JSON lab spec; LabSetupError `LAB_SPEC_UNREADABLE` / `LAB_SPEC_INVALID` naming the problem. */
export async function loadSpec(path: string): Promise<LabSpec> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new LabSetupError(
      'LAB_SPEC_UNREADABLE',
      `cannot read lab spec ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      { file: path },
      { cause: error },
    )
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new LabSetupError(
      'LAB_SPEC_INVALID',
      `lab spec ${path} is not valid JSON: ${(error as Error).message}`,
      { file: path },
      { cause: error },
    )
  }
  return validateSpec(parsed, path)
}
