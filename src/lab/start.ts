/**
 * Starting and stopping a lab: pools from a spec (or restored from `dir`), each listening as a
 * {@link PoolSite} (an HTTP and an NBD server per host, each host on its own loopback address),
 * a ready xen-cr config file, and the control API.
 */
import { randomBytes, X509Certificate } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Database } from './db/database.js'
import { populatePool } from './build.js'
import { createControl, type LabControl } from './control.js'
import { lockLabDir } from './dir-lock.js'
import { controlRoute } from './control-route.js'
import type { Route } from './http/host-server.js'
import { DatabaseSaver, readDatabase, readJsonIfExists, writeJsonAtomic } from './persistence.js'
import { LabPool, type LabUser } from './pool.js'
import { buildApi } from './rpc/api.js'
import type { MethodRegistry } from './rpc/registry.js'
import { freshAddresses, PoolSite } from './site.js'
import { DEFAULT_SPEC, loadSpec, validateSpec, type LabGuestSpec, type LabPoolSpec, type LabSpec } from './spec.js'
import { SparseDiskStore } from './storage/sparse-disk-store.js'
import type { HostCertificate } from './nbd/certificate.js'
import { checkXapiVersion, emulateRelease, emulatedRelease } from './rpc/versions.js'

/** A host of a running lab pool. */
export interface LabHostInfo {
  readonly name: string
  readonly uuid: string
  /** `http://address:port` */
  readonly url: string
  /** `https://address:port`, serving the same with the host's self-signed certificate */
  readonly httpsUrl: string
  /** that certificate's SHA-256 fingerprint, `sha256:AB:…` (what a config pins) */
  readonly fingerprint: string
  readonly address: string
}

/** Where to reach a running lab pool and how to log in (its first user). */
export interface LabPoolInfo {
  readonly name: string
  /** the master's URL, `http://127.0.0.x:port` */
  readonly url: string
  /** the master's HTTPS URL, `https://127.0.0.x:port` */
  readonly httpsUrl: string
  /** what the pool's XAPI emulates: `"6.5"` for a XenServer 6.5 pool, else the current release */
  readonly xapiVersion: string
  readonly user: string
  readonly password: string
  readonly hosts: readonly LabHostInfo[]
}

/** A running lab. */
export interface Lab {
  readonly pools: readonly LabPoolInfo[]
  /** `<dir>/xen-cr.config.json` */
  readonly configPath: string
  /** `<dir>/xen-cr.https.config.json`: the same pools over HTTPS, every host's certificate pinned */
  readonly httpsConfigPath: string
  readonly dir: string
  readonly control: LabControl
  /** true when `dir` already held a lab, which was restored (any spec given was ignored) */
  readonly restored: boolean
  stop(): Promise<void>
}

/** Options of {@link startLab}. */
export interface StartLabOptions {
  /** a spec or the path of a JSON spec; default {@link DEFAULT_SPEC}; ignored when `dir` holds a lab */
  readonly spec?: LabSpec | string
  readonly dir: string
  /** delay before a failed login answers (XAPI: 5 s); default 0 */
  readonly loginDelayMs?: number
  /**
   * the XAPI release every pool emulates unless its spec says (`xapiVersion`), e.g. `"6.5"`;
   * default the environment's `XEN_CR_LAB_XAPI_VERSION`, then the current release
   */
  readonly xapiVersion?: string
}

/** What `<dir>/lab.json` records so that a restart finds the same pools at the same addresses. */
interface LabManifest {
  readonly version: 1
  readonly pools: readonly {
    readonly name: string
    readonly port: number
    /** absent in labs made before the hosts served NBD */
    readonly nbdPort?: number
    /** absent in labs made before the hosts served HTTPS */
    readonly tlsPort?: number
    readonly addresses: readonly string[]
    readonly users: readonly LabUser[]
    readonly faults?: LabPoolSpec['faults']
  }[]
  /** the spec's lab-wide guest setting: a restart does not read the spec again */
  readonly guest?: LabGuestSpec
}

const MANIFEST = 'lab.json'
const CONFIG = 'xen-cr.config.json'
const HTTPS_CONFIG = 'xen-cr.https.config.json'
/** per pool: the hosts' keys and certificates, so a restart keeps the fingerprints configs pin */
const CERTIFICATES = 'certificates.json'

interface RunningPool {
  readonly pool: LabPool
  readonly saver: DatabaseSaver
  readonly site: PoolSite
}

function generatePassword(): string {
  return randomBytes(12).toString('base64url')
}

/** Starts every pool of the spec (or restores the lab found in `dir`) and resolves once every host listens. */
export async function startLab(options: StartLabOptions): Promise<Lab> {
  const dir = options.dir
  await mkdir(dir, { recursive: true })
  const unlock = await lockLabDir(dir)
  try {
    return await startLocked(options, unlock)
  } catch (error) {
    await unlock()
    throw error
  }
}

async function startLocked(options: StartLabOptions, unlock: () => Promise<void>): Promise<Lab> {
  const dir = options.dir
  const manifest = await readJsonIfExists<LabManifest>(join(dir, MANIFEST))
  const spec: LabSpec | undefined =
    manifest !== undefined
      ? undefined
      : typeof options.spec === 'string'
        ? await loadSpec(options.spec)
        : validateSpec(options.spec ?? DEFAULT_SPEC)
  const registry = buildApi()
  const pools = new Map<string, LabPool>()
  const sites = new Map<string, PoolSite>()
  const control = createControl(pools, sites)
  const route = controlRoute(control)
  const guest = manifest !== undefined ? manifest.guest : spec?.guest
  const xapiVersion = options.xapiVersion ?? (process.env['XEN_CR_LAB_XAPI_VERSION'] || undefined)
  if (xapiVersion !== undefined) checkXapiVersion(xapiVersion, 'XEN_CR_LAB_XAPI_VERSION')
  const running: RunningPool[] = []

  const poolNames = manifest?.pools.map(p => p.name) ?? spec!.pools.map(p => p.name)
  try {
    for (const name of poolNames) {
      const opened = await openPool({
        dir,
        name,
        remembered: manifest?.pools.find(p => p.name === name),
        spec: spec?.pools.find(p => p.name === name),
        loginDelayMs: options.loginDelayMs ?? 0,
        xapiVersion,
        guest,
        registry,
        route,
      })
      pools.set(name, opened.pool)
      sites.set(name, opened.site)
      running.push(opened)
    }
  } catch (error) {
    await stopPools(running)
    throw error
  }

  const infos: LabPoolInfo[] = running.map(({ pool, site: { port, tlsPort } }) => {
    const [first] = pool.users
    const hosts = [...pool.db.all('host')].map(([ref, host]) => ({
      name: host['name_label'] as string,
      uuid: host['uuid'] as string,
      address: host['address'] as string,
      url: `http://${host['address'] as string}:${port}`,
      httpsUrl: `https://${host['address'] as string}:${tlsPort}`,
      fingerprint: `sha256:${new X509Certificate(pool.certificates.get(ref)!.certPem).fingerprint256}`,
      ref,
    }))
    const master = hosts.find(h => h.ref === pool.masterRef)!
    return {
      name: pool.name,
      url: master.url,
      httpsUrl: master.httpsUrl,
      xapiVersion: emulatedRelease(pool.db),
      user: first!.user,
      password: first!.password,
      hosts: hosts.map(({ ref: _ref, ...host }) => host),
    }
  })

  await writeJsonAtomic(
    join(dir, MANIFEST),
    {
      version: 1,
      pools: running.map(({ pool, site }) => ({
        name: pool.name,
        port: site.port,
        nbdPort: site.nbdPort,
        tlsPort: site.tlsPort,
        addresses: site.addresses,
        users: pool.users,
        ...(spec?.pools.find(p => p.name === pool.name)?.faults === undefined
          ? {}
          : { faults: spec.pools.find(p => p.name === pool.name)!.faults }),
      })),
      ...(guest === undefined ? {} : { guest }),
    } satisfies LabManifest,
    0o600,
  )
  const configPath = join(dir, CONFIG)
  const config: { pools: Record<string, unknown>; defaults: { jobsFile: string } } = {
    pools: {},
    defaults: { jobsFile: 'jobs.json' },
  }
  for (const info of infos) {
    await writeFile(join(dir, `${info.name}.password`), info.password, { mode: 0o600 })
    config.pools[info.name] = {
      url: info.url,
      user: info.user,
      passwordFile: `${info.name}.password`,
      allowUnauthorized: false,
    }
  }
  await writeJsonAtomic(configPath, config)
  // the same pools over HTTPS: the master's https URL, every host's certificate pinned (a
  // redirect or a new coordinator reaches another host, which has a certificate of its own)
  const httpsConfigPath = join(dir, HTTPS_CONFIG)
  await writeJsonAtomic(httpsConfigPath, {
    ...config,
    pools: Object.fromEntries(
      infos.map(info => [
        info.name,
        {
          url: info.httpsUrl,
          user: info.user,
          passwordFile: `${info.name}.password`,
          fingerprint: info.hosts.map(host => host.fingerprint),
        },
      ]),
    ),
  })

  let stopping: Promise<void> | undefined
  return {
    pools: infos,
    configPath,
    httpsConfigPath,
    dir,
    control,
    restored: manifest !== undefined,
    stop: () => (stopping ??= stopPools(running).finally(unlock)),
  }
}

/** One pool: its storage and database (restored from `dir` or built from the spec), listening on every host. */
async function openPool(options: {
  dir: string
  name: string
  remembered: LabManifest['pools'][number] | undefined
  spec: LabPoolSpec | undefined
  loginDelayMs: number
  xapiVersion: string | undefined
  guest: LabGuestSpec | undefined
  registry: MethodRegistry
  route: Route
}): Promise<RunningPool> {
  const { name, remembered, spec } = options
  const poolDir = join(options.dir, 'pools', name)
  await mkdir(poolDir, { recursive: true })
  const users =
    remembered?.users ??
    (spec?.users ?? [{ user: 'root' }]).map(u => ({ user: u.user, password: u.password ?? generatePassword() }))
  const storage = await SparseDiskStore.open(join(poolDir, 'disks'))
  let saver: DatabaseSaver | undefined
  let pool: LabPool | undefined
  let site: PoolSite | undefined
  try {
    const db = new Database()
    pool = new LabPool({
      name,
      db,
      storage,
      users,
      loginDelayMs: options.loginDelayMs,
      ...(options.guest === undefined ? {} : { guest: options.guest }),
    })
    const dbPath = join(poolDir, 'db.json')
    const dump = remembered === undefined ? undefined : await readDatabase(dbPath)
    let fresh: string[] = []
    if (dump !== undefined) {
      db.restore(dump)
      pool.tasks.failOrphans()
    } else {
      fresh = freshAddresses((spec?.hosts ?? [`${name}-host1`]).length)
      await populatePool(pool, spec ?? { name }, fresh)
      // the release lives in the host records, so a restart emulates the same one
      const release = spec?.xapiVersion ?? options.xapiVersion
      if (release !== undefined) emulateRelease(db, release)
    }
    const certificatesPath = join(poolDir, CERTIFICATES)
    const certificates = await readJsonIfExists<Record<string, HostCertificate>>(certificatesPath)
    if (dump !== undefined)
      for (const [ref, certificate] of Object.entries(certificates ?? {})) pool.certificates.set(ref, certificate)
    for (const fault of remembered?.faults ?? spec?.faults ?? []) pool.faults.add(fault)
    saver = new DatabaseSaver(db, dbPath)
    // Addresses may move on a restart: the site moves the host records with them.
    site = await PoolSite.bind(pool, options.registry, options.route, remembered ?? { port: 0, addresses: fresh })
    await writeJsonAtomic(certificatesPath, Object.fromEntries(pool.certificates), 0o600)
    await saver.flush()
    await storage.flush()
    return { pool, saver, site }
  } catch (error) {
    // This pool never started: release what it opened.
    pool?.close()
    await site?.close()
    saver?.stop()
    await storage.close()
    throw error
  }
}

async function stopPools(running: readonly RunningPool[]): Promise<void> {
  for (const { pool } of running) pool.close()
  await Promise.all(running.map(r => r.site.close()))
  for (const { pool, saver } of running) {
    await saver.flush()
    saver.stop()
    await pool.storage.flush()
    await pool.storage.close()
  }
}
