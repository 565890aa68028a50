/**
 * A pool's hosts as the network sees them: per host an HTTP and an HTTPS server (XAPI, the data
 * paths, the control API) and an NBD server, each host on its own loopback address. All hosts of a pool
 * share one HTTP port (the JS client follows HOST_IS_SLAVE by replacing only the hostname), one
 * HTTPS port and one NBD port. A site can go down like a lost data centre — every socket of its hosts closes,
 * connections are refused — and come back on the same addresses and ports with the state it
 * had, minus what a host restart loses (sessions, pending tasks).
 */
import { DATA_PATHS } from './http/data-paths.js'
import { HostServer, isHttps, type Route } from './http/host-server.js'
import { hostCertificate } from './nbd/certificate.js'
import { nbdConnectionHost } from './nbd/nbd-exports.js'
import { NbdServer } from './nbd/nbd-server.js'
import type { LabPool } from './pool.js'
import type { MethodRegistry } from './rpc/registry.js'
import { setHalted } from './rpc/vm-methods.js'
import { xvaHandlerContext } from './xva/xva-context.js'

/** Loopback addresses not used by this process yet; the start is random so parallel labs rarely collide. */
let nextOctet = 2 + Math.floor(Math.random() * 200)
export function freshAddresses(count: number): string[] {
  const out: string[] = []
  for (let i = 0; i < count; i++) {
    if (nextOctet > 254) nextOctet = 2
    out.push(`127.0.0.${nextOctet++}`)
  }
  return out
}

/** Where a site listened before (a restart tries the same places first). */
export interface SiteAddresses {
  readonly port: number
  readonly nbdPort?: number | undefined
  /** the HTTPS port all hosts share (absent in labs made before the hosts served HTTPS) */
  readonly tlsPort?: number | undefined
  readonly addresses: readonly string[]
}

/** How a site goes down: a network cut (VMs keep running) or a power cut (they are Halted when it returns). */
export interface SiteDownOptions {
  readonly haltVms?: boolean
}

const isAddressTaken = (error: unknown): boolean =>
  (error as NodeJS.ErrnoException).code === 'EADDRINUSE' || (error as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL'

export class PoolSite {
  readonly pool: LabPool
  readonly #registry: MethodRegistry
  readonly #route: Route
  #addresses: readonly string[]
  #port: number
  #nbdPort: number
  #tlsPort: number
  #http: HostServer[] = []
  #nbd: NbdServer[] = []
  #up = false
  /** down and up one at a time */
  #switching: Promise<void> = Promise.resolve()

  private constructor(pool: LabPool, registry: MethodRegistry, route: Route, where: SiteAddresses) {
    this.pool = pool
    this.#registry = registry
    this.#route = route
    this.#addresses = where.addresses
    this.#port = where.port
    this.#nbdPort = where.nbdPort ?? 0
    this.#tlsPort = where.tlsPort ?? 0
  }

  /**
   * Binds every host: the remembered addresses and ports first, then fresh addresses (any port)
   * when they are taken. The host records and management PIFs follow the addresses it got, and
   * each host gets a TLS identity for them.
   */
  static async bind(
    pool: LabPool,
    registry: MethodRegistry,
    route: Route,
    remembered: SiteAddresses,
  ): Promise<PoolSite> {
    const hostCount = pool.db.count('host')
    let lastError: unknown
    for (let attempt = 0; attempt < 20; attempt++) {
      const where: SiteAddresses =
        attempt === 0 && remembered.addresses.length === hostCount
          ? remembered
          : { port: attempt === 0 ? remembered.port : 0, addresses: freshAddresses(hostCount) }
      const site = new PoolSite(pool, registry, route, where)
      try {
        site.#follow()
        await site.#listen(true)
        return site
      } catch (error) {
        if (!isAddressTaken(error)) throw error
        lastError = error
      }
    }
    throw lastError
  }

  get addresses(): readonly string[] {
    return this.#addresses
  }

  get port(): number {
    return this.#port
  }

  get nbdPort(): number {
    return this.#nbdPort
  }

  get tlsPort(): number {
    return this.#tlsPort
  }

  get isUp(): boolean {
    return this.#up
  }

  /** Every host stops answering: listening sockets and open connections close; the state stays. */
  down(options: SiteDownOptions = {}): Promise<void> {
    return this.#serially(async () => {
      if (!this.#up) return
      this.#up = false
      await this.#closeAll()
      if (options.haltVms === true) {
        const hosts = new Set([...this.pool.db.all('host')].map(([ref]) => ref))
        for (const [ref, vm] of [...this.pool.db.all('VM')]) {
          if (vm['is_control_domain'] !== true && hosts.has(vm['resident_on'] as string)) setHalted(this.pool, ref)
        }
      }
    })
  }

  /** The hosts answer again on the same addresses and ports, as after a restart: every session is gone. */
  up(): Promise<void> {
    return this.#serially(async () => {
      if (this.#up) return
      this.pool.forgetSessions()
      await this.#listen(false)
    })
  }

  /** The lab stops. */
  close(): Promise<void> {
    return this.#serially(async () => {
      this.#up = false
      await this.#closeAll()
    })
  }

  #serially(step: () => Promise<void>): Promise<void> {
    const next = this.#switching.then(step)
    this.#switching = next.catch(() => undefined)
    return next
  }

  /** The host records, management PIFs and host certificates follow the addresses this site uses. */
  #follow(): void {
    const db = this.pool.db
    for (const [i, [hostRef, host]] of [...db.all('host')].entries()) {
      const address = this.#addresses[i]!
      const old = host['address'] as string
      if (old !== address) {
        db.update('host', hostRef, { address })
        for (const pif of db.related('PIF', 'host', hostRef))
          if (db.get('PIF', pif)['IP'] === old) db.update('PIF', pif, { IP: address })
      }
      if (this.pool.certificates.get(hostRef) === undefined || old !== address)
        this.pool.certificates.set(hostRef, hostCertificate(host['hostname'] as string, address))
    }
  }

  /** Listens on every host; the first bind of a port 0 picks the port the others share. */
  async #listen(firstTime: boolean): Promise<void> {
    const pool = this.pool
    const hostRefs = [...pool.db.all('host')].map(([ref]) => ref)
    try {
      for (const [i, hostRef] of hostRefs.entries()) {
        const address = this.#addresses[i]!
        const baseUrlOf = (ref: string): string => `http://${pool.hostAddress(ref)}:${this.#port}`
        const context = xvaHandlerContext(pool, hostRef, baseUrlOf)
        // a redirect to the host holding the disk keeps the scheme the request came with
        const tlsContext = xvaHandlerContext(
          pool,
          hostRef,
          (ref: string): string => `https://${pool.hostAddress(ref)}:${this.#tlsPort}`,
        )
        const certificate = pool.certificates.get(hostRef)!
        const http = await HostServer.listen({
          target: { pool, registry: this.#registry, hostRef },
          address,
          port: this.#port,
          routes: [
            ...DATA_PATHS.map(({ method, prefix, handler }): Route => ({
              method,
              prefix,
              handle: (req, res) => handler(req, res, isHttps(req) ? tlsContext : context),
            })),
            this.#route,
          ],
          // XAPI's port 443, with the host certificate its NBD server uses too
          tls: { port: this.#tlsPort, cert: certificate.certPem, key: certificate.keyPem },
        })
        this.#http.push(http)
        this.#port = http.port
        this.#tlsPort = http.tlsPort ?? 0
        const nbd = await this.#listenNbd(hostRef, address, firstTime)
        this.#nbd.push(nbd)
        this.#nbdPort = nbd.port
      }
    } catch (error) {
      await this.#closeAll()
      throw error
    }
    pool.nbdPort = this.#nbdPort
    this.#up = true
  }

  /** The NBD port is in no config file: at the first start a taken one is simply replaced. */
  async #listenNbd(hostRef: string, address: string, firstTime: boolean): Promise<NbdServer> {
    const options = { address, connectionHost: () => nbdConnectionHost(this.pool, hostRef, address) }
    try {
      return await NbdServer.listen({ ...options, port: this.#nbdPort })
    } catch (error) {
      if (!firstTime || this.#nbd.length > 0 || this.#nbdPort === 0 || !isAddressTaken(error)) throw error
      return NbdServer.listen({ ...options, port: 0 })
    }
  }

  async #closeAll(): Promise<void> {
    const servers = [...this.#http, ...this.#nbd]
    this.#http = []
    this.#nbd = []
    await Promise.all(servers.map(server => server.close()))
  }
}
