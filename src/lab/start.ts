/**
 * Starting and stopping a lab: pools from a spec (or restored from `dir`), one HTTP server per
 * host on its own loopback address (all hosts of a pool share one port, because the JS client
 * follows HOST_IS_SLAVE by replacing only the hostname), a ready xen-cr config file, and the
 * control API.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Database, type DatabaseDump } from './db/database.js'
import { populatePool } from './build.js'
import { controlRoute, createControl, type LabControl } from './control.js'
import { DATA_PATHS } from './http/data-paths.js'
import { HostServer, type Route } from './http/host-server.js'
import { DatabaseSaver, readJsonIfExists, writeJsonAtomic } from './persistence.js'
import { LabPool, type LabUser } from './pool.js'
import { buildApi } from './rpc/api.js'
import type { MethodRegistry } from './rpc/registry.js'
import { DEFAULT_SPEC, loadSpec, validateSpec, type LabPoolSpec, type LabSpec } from './spec.js'
import { SparseDiskStore } from './storage/sparse-disk-store.js'
import { xvaHandlerContext } from './xva/xva-context.js'

/** A host of a running lab pool. */
/** A running lab. */
export interface LabHostInfo {
  readonly name: string
  readonly uuid: string
  /** `http://address:port` */
  readonly url: string
  readonly address: string
}

/** Where to reach a running lab pool and how to log in (its first user). */
export interface LabPoolInfo {
  readonly name: string
  /** the master's URL, `http://127.0.0.x:port` */
  readonly url: string
  readonly user: string
  readonly password: string
  readonly hosts: readonly LabHostInfo[]
}

export interface Lab {
  readonly pools: readonly LabPoolInfo[]
  /** `<dir>/xen-cr.config.json` */
  readonly configPath: string
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
}

/** What `<dir>/lab.json` records so that a restart finds the same pools at the same addresses. */
interface LabManifest {
  readonly version: 1
  readonly pools: readonly {
    readonly name: string
    readonly port: number
    readonly addresses: readonly string[]
    readonly users: readonly LabUser[]
    readonly faults?: LabPoolSpec['faults']
  }[]
}

const MANIFEST = 'lab.json'
const CONFIG = 'xen-cr.config.json'

interface RunningPool {
  readonly pool: LabPool
  readonly saver: DatabaseSaver
  readonly servers: HostServer[]
  readonly port: number
  readonly addresses: string[]
}

function generatePassword(): string {
  return randomBytes(12).toString('base64url')
}

/** Loopback addresses not used by this process yet; the start is random so parallel labs rarely collide. */
let nextOctet = 2 + Math.floor(Math.random() * 200)
function freshAddresses(count: number): string[] {
  const out: string[] = []
  for (let i = 0; i < count; i++) {
    if (nextOctet > 254) nextOctet = 2
    out.push(`127.0.0.${nextOctet++}`)
  }
  return out
}

async function listenAll(
  pool: LabPool,
  registry: MethodRegistry,
  addresses: readonly string[],
  port: number,
  controlRouteFor: Route,
): Promise<HostServer[]> {
  const hostRefs = [...pool.db.all('host')].map(([ref]) => ref)
  const servers: HostServer[] = []
  let sharedPort = port
  try {
    for (const [i, hostRef] of hostRefs.entries()) {
      const address = addresses[i]!
      const baseUrlOf = (ref: string): string => `http://${pool.hostAddress(ref)}:${sharedPort}`
      const context = xvaHandlerContext(pool, hostRef, baseUrlOf)
      const server = await HostServer.listen({
        target: { pool, registry, hostRef },
        address,
        port: sharedPort,
        routes: [
          ...DATA_PATHS.map(({ method, prefix, handler }): Route => ({
            method,
            prefix,
            handle: (req, res) => handler(req, res, context),
          })),
          controlRouteFor,
        ],
      })
      servers.push(server)
      sharedPort = server.port
    }
  } catch (error) {
    await Promise.all(servers.map(server => server.close()))
    throw error
  }
  return servers
}

/** Binds every host of the pool: the remembered addresses first, then fresh ones. */
async function bindPool(
  pool: LabPool,
  registry: MethodRegistry,
  remembered: { port: number; addresses: readonly string[] } | undefined,
  route: Route,
): Promise<{ servers: HostServer[]; addresses: string[]; port: number }> {
  const hostCount = pool.db.count('host')
  let lastError: unknown
  for (let attempt = 0; attempt < 20; attempt++) {
    const addresses =
      attempt === 0 && remembered !== undefined && remembered.addresses.length === hostCount
        ? [...remembered.addresses]
        : freshAddresses(hostCount)
    const port = attempt === 0 && remembered !== undefined ? remembered.port : 0
    try {
      const servers = await listenAll(pool, registry, addresses, port, route)
      return { servers, addresses, port: servers[0]!.port }
    } catch (error) {
      if (
        (error as NodeJS.ErrnoException).code !== 'EADDRINUSE' &&
        (error as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL'
      )
        throw error
      lastError = error
    }
  }
  throw lastError
}

/** Starts every pool of the spec (or restores the lab found in `dir`) and resolves once every host listens. */
export async function startLab(options: StartLabOptions): Promise<Lab> {
  const dir = options.dir
  await mkdir(dir, { recursive: true })
  const manifest = await readJsonIfExists<LabManifest>(join(dir, MANIFEST))
  const spec: LabSpec | undefined =
    manifest !== undefined
      ? undefined
      : typeof options.spec === 'string'
        ? await loadSpec(options.spec)
        : validateSpec(options.spec ?? DEFAULT_SPEC)
  const registry = buildApi()
  const pools = new Map<string, LabPool>()
  const control = createControl(pools)
  const route = controlRoute(control)
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
        registry,
        route,
      })
      pools.set(name, opened.pool)
      running.push(opened)
    }
  } catch (error) {
    await stopPools(running)
    throw error
  }

  const infos: LabPoolInfo[] = running.map(({ pool, port }) => {
    const [first] = pool.users
    const hosts = [...pool.db.all('host')].map(([ref, host]) => ({
      name: host['name_label'] as string,
      uuid: host['uuid'] as string,
      address: host['address'] as string,
      url: `http://${host['address'] as string}:${port}`,
      ref,
    }))
    const master = hosts.find(h => h.ref === pool.masterRef)!
    return {
      name: pool.name,
      url: master.url,
      user: first!.user,
      password: first!.password,
      hosts: hosts.map(({ ref: _ref, ...host }) => host),
    }
  })

  await writeJsonAtomic(
    join(dir, MANIFEST),
    {
      version: 1,
      pools: running.map(({ pool, port, addresses }) => ({
        name: pool.name,
        port,
        addresses,
        users: pool.users,
        ...(spec?.pools.find(p => p.name === pool.name)?.faults === undefined
          ? {}
          : { faults: spec.pools.find(p => p.name === pool.name)!.faults }),
      })),
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

  let stopping: Promise<void> | undefined
  return {
    pools: infos,
    configPath,
    dir,
    control,
    restored: manifest !== undefined,
    stop: () => (stopping ??= stopPools(running)),
  }
}

/** One pool: its storage and database (restored from `dir` or built from the spec), listening on every host. */
async function openPool(options: {
  dir: string
  name: string
  remembered: LabManifest['pools'][number] | undefined
  spec: LabPoolSpec | undefined
  loginDelayMs: number
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
  let servers: HostServer[] = []
  try {
    const db = new Database()
    const pool = new LabPool({ name, db, storage, users, loginDelayMs: options.loginDelayMs })
    const dbPath = join(poolDir, 'db.json')
    const dump = remembered === undefined ? undefined : await readJsonIfExists<DatabaseDump>(dbPath)
    let fresh: string[] = []
    if (dump !== undefined) {
      db.restore(dump)
      pool.tasks.failOrphans()
    } else {
      fresh = freshAddresses((spec?.hosts ?? [`${name}-host1`]).length)
      await populatePool(pool, spec ?? { name }, fresh)
    }
    for (const fault of remembered?.faults ?? spec?.faults ?? []) pool.faults.add(fault)
    saver = new DatabaseSaver(db, dbPath)
    const bound = await bindPool(pool, options.registry, remembered ?? { port: 0, addresses: fresh }, options.route)
    servers = bound.servers
    // Addresses may have moved on a restart: the host records follow.
    for (const [i, [hostRef]] of [...db.all('host')].entries()) {
      if (db.get('host', hostRef)['address'] !== bound.addresses[i])
        db.update('host', hostRef, { address: bound.addresses[i]! })
    }
    await saver.flush()
    await storage.flush()
    return { pool, saver, servers: bound.servers, port: bound.port, addresses: bound.addresses }
  } catch (error) {
    // This pool never started: release what it opened.
    await Promise.all(servers.map(server => server.close()))
    saver?.stop()
    await storage.close()
    throw error
  }
}

async function stopPools(running: readonly RunningPool[]): Promise<void> {
  for (const { pool } of running) pool.close()
  await Promise.all(running.flatMap(r => r.servers.map(server => server.close())))
  for (const { pool, saver } of running) {
    await saver.flush()
    saver.stop()
    await pool.storage.flush()
    await pool.storage.close()
  }
}
