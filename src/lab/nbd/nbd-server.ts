/**
 * A lab host's NBD server (XAPI's `xapi-nbd`, port 10809 on a real host): one listening socket
 * on the host's loopback address, each connection served by {@link serveNbdConnection} with
 * what the host decides when it is accepted (TLS or not, which exports exist). `close()` stops
 * listening and ends every connection, as a host that goes away does.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { serveNbdConnection, type NbdConnectionHost } from './connection.js'

/** Where to listen, and per accepted connection the host's rules, or undefined to hang up at once. */
export interface NbdServerOptions {
  readonly address: string
  readonly port: number
  /** undefined: no network of the pool allows NBD, so the connection is dropped as a firewall would */
  connectionHost(): NbdConnectionHost | undefined
}

export class NbdServer {
  readonly #server: Server
  readonly #sockets = new Set<Socket>()

  private constructor(server: Server) {
    this.#server = server
  }

  /** Listens; rejects with the listen error (EADDRINUSE…) so the caller can pick another port. */
  static async listen(options: NbdServerOptions): Promise<NbdServer> {
    const server = createServer({ noDelay: true })
    const nbd = new NbdServer(server)
    server.on('connection', socket => {
      nbd.#sockets.add(socket)
      socket.once('close', () => nbd.#sockets.delete(socket))
      socket.on('error', () => socket.destroy())
      const host = options.connectionHost()
      if (host === undefined) socket.destroy()
      else void serveNbdConnection(socket, host)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port, options.address, () => {
        server.off('error', reject)
        resolve()
      })
    })
    return nbd
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port
  }

  async close(): Promise<void> {
    await new Promise<void>(resolve => {
      this.#server.close(() => resolve())
      for (const socket of this.#sockets) socket.destroy()
    })
  }
}
