/**
 * A minimal NBD client for reading disks at random offsets, as XAPI serves them to backup tools
 * (reference §5.5): fixed newstyle handshake, `NBD_OPT_STARTTLS` first (XAPI's NBD server
 * insists on TLS), then `NBD_OPT_GO` (or `NBD_OPT_EXPORT_NAME` on a server without it) and
 * `NBD_CMD_READ` with simple replies, one request in flight. Only what sampled verification
 * needs: no writes, no structured replies, no block status.
 */
import { connect as connectTcp, isIP, type Socket } from 'node:net'
import { X509Certificate } from 'node:crypto'
import { connect as connectTls, type TLSSocket } from 'node:tls'
import { AbortedError, OperationError, isXenCrError } from '../errors.js'
import type { NbdExportInfo } from './nbd-info.js'

const NBDMAGIC = Buffer.from('NBDMAGIC')
const IHAVEOPT = Buffer.from('IHAVEOPT')
/** What an oldstyle server sends where a newstyle one sends IHAVEOPT. */
const OLDSTYLE_MAGIC = 0x00420281861253n
const OPTION_REPLY_MAGIC = 0x3e889045565a9n
const REQUEST_MAGIC = 0x25609513
const SIMPLE_REPLY_MAGIC = 0x67446698
const STRUCTURED_REPLY_MAGIC = 0x668e33ef

const FLAG_FIXED_NEWSTYLE = 1 << 0
const FLAG_NO_ZEROES = 1 << 1

const OPT_EXPORT_NAME = 1
const OPT_ABORT = 2
const OPT_STARTTLS = 5
const OPT_GO = 7

const REP_ACK = 1
const REP_INFO = 3
const REP_ERR_UNSUP = 0x80000001
const INFO_EXPORT = 0

const CMD_READ = 0
const CMD_DISC = 2

/** The largest option reply we accept: an error message or an info block, never data. */
const MAX_OPTION_REPLY = 64 * 1024
/** A read larger than this is refused here; XAPI's server and qemu's cap requests at 32 MiB. */
export const NBD_MAX_READ = 32 * 1024 * 1024
const DEFAULT_IDLE_TIMEOUT_MS = 60_000

const REPLY_ERRORS: Readonly<Record<number, string>> = {
  0x80000001: 'NBD_REP_ERR_UNSUP',
  0x80000002: 'NBD_REP_ERR_POLICY',
  0x80000003: 'NBD_REP_ERR_INVALID',
  0x80000004: 'NBD_REP_ERR_PLATFORM',
  0x80000005: 'NBD_REP_ERR_TLS_REQD',
  0x80000006: 'NBD_REP_ERR_UNKNOWN',
  0x80000007: 'NBD_REP_ERR_SHUTDOWN',
  0x80000008: 'NBD_REP_ERR_BLOCK_SIZE_REQD',
  0x80000009: 'NBD_REP_ERR_TOO_BIG',
}

export interface NbdConnectOptions {
  readonly signal?: AbortSignal
  /** a socket silent for this long while we wait for it is cut (default 60 s) */
  readonly idleTimeoutMs?: number
}

/**
 * Exact-size reads from a socket. Data is taken as it comes and the socket paused while more is
 * buffered than the pending read wants, so memory stays at one reply plus one chunk.
 */
class SocketReader {
  #chunks: Buffer[] = []
  #buffered = 0
  #wanted: { length: number; resolve: (data: Buffer) => void; reject: (error: Error) => void } | undefined
  #failure: Error | undefined
  readonly #socket: Socket
  readonly #describe: () => string

  constructor(socket: Socket, describe: () => string) {
    this.#socket = socket
    this.#describe = describe
    socket.on('data', this.#onData)
    socket.on('end', this.#onEnd)
    socket.on('close', this.#onEnd)
    socket.on('error', this.#onError)
  }

  /** Exactly `length` bytes, or the connection's failure. */
  read(length: number): Promise<Buffer> {
    if (this.#buffered >= length) return Promise.resolve(this.#take(length))
    if (this.#failure !== undefined) return Promise.reject(this.#failure)
    return new Promise((resolve, reject) => {
      this.#wanted = { length, resolve, reject }
      this.#socket.resume()
    })
  }

  /** Stops listening (before the socket is handed to TLS); bytes left unread are a protocol error. */
  detach(): number {
    this.#socket.off('data', this.#onData)
    this.#socket.off('end', this.#onEnd)
    this.#socket.off('close', this.#onEnd)
    this.#socket.off('error', this.#onError)
    this.#socket.pause()
    return this.#buffered
  }

  #take(length: number): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#buffered)
    const out = all.subarray(0, length)
    const rest = all.subarray(length)
    this.#chunks = rest.length === 0 ? [] : [rest]
    this.#buffered = rest.length
    return out
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    const wanted = this.#wanted
    if (wanted !== undefined && this.#buffered >= wanted.length) {
      this.#wanted = undefined
      wanted.resolve(this.#take(wanted.length))
    }
    if (this.#wanted === undefined) this.#socket.pause()
  }

  readonly #onEnd = (): void => {
    this.#fail(
      new OperationError('NBD_CONNECTION', `${this.#describe()} closed the connection in the middle of an answer`),
    )
  }

  readonly #onError = (error: Error): void => {
    this.#fail(
      isXenCrError(error)
        ? error
        : new OperationError('NBD_CONNECTION', `${this.#describe()}: ${error.message}`, { cause: error }),
    )
  }

  #fail(error: Error): void {
    this.#failure ??= error
    const wanted = this.#wanted
    this.#wanted = undefined
    wanted?.reject(this.#failure)
  }
}

function option(code: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(16)
  IHAVEOPT.copy(head, 0)
  head.writeUInt32BE(code, 8)
  head.writeUInt32BE(data.length, 12)
  return Buffer.concat([head, data])
}

function request(type: number, handle: bigint, offset: number, length: number): Buffer {
  const out = Buffer.alloc(28)
  out.writeUInt32BE(REQUEST_MAGIC, 0)
  out.writeUInt16BE(0, 4)
  out.writeUInt16BE(type, 6)
  out.writeBigUInt64BE(handle, 8)
  out.writeBigUInt64BE(BigInt(offset), 16)
  out.writeUInt32BE(length, 24)
  return out
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

function replyName(type: number): string {
  return REPLY_ERRORS[type] ?? `reply type ${type}`
}

/** One connection to one export, read-only. */
export class NbdClient {
  readonly #socket: Socket
  readonly #reader: SocketReader
  readonly #where: string
  readonly #cleanup: () => void
  readonly #idleTimeoutMs: number
  #handle = 0n
  #busy = false
  #closed = false

  /** The export's size in bytes, as the server announced it. */
  readonly size: number

  private constructor(
    socket: Socket,
    reader: SocketReader,
    where: string,
    size: number,
    idleTimeoutMs: number,
    cleanup: () => void,
  ) {
    this.#socket = socket
    this.#reader = reader
    this.#where = where
    this.size = size
    this.#idleTimeoutMs = idleTimeoutMs
    this.#cleanup = cleanup
  }

  /**
   * Connects to `info` (one entry of `VDI.get_nbd_info`), upgrades to TLS trusting exactly the
   * certificate XAPI announced for that host, and opens the export. Failures: `NBD_CONNECTION`,
   * `NBD_TLS`, `NBD_REFUSED`, `NBD_PROTOCOL`, `ABORTED`.
   */
  static async connect(info: NbdExportInfo, options: NbdConnectOptions = {}): Promise<NbdClient> {
    const where = `NBD server ${info.address}:${info.port}`
    const { signal } = options
    if (signal?.aborted === true) throw new AbortedError(`connection to ${where} aborted`)
    const idle = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS
    const pinned = pinnedCertificate(info.cert, where)
    let socket: Socket = connectTcp({ host: info.address, port: info.port })
    // The timer runs only while we wait for the server (setTimeout(0) between reads), so a
    // connection left idle by a slow caller is not cut.
    const onTimeout = (): void => {
      socket.destroy(new OperationError('NBD_CONNECTION', `${where} sent nothing for ${idle} ms; it stopped answering`))
    }
    const onAbort = (): void => {
      socket.destroy(new AbortedError(`NBD connection to ${where} aborted`))
    }
    const watch = (s: Socket): void => {
      s.on('error', () => undefined)
      s.on('timeout', onTimeout)
      s.setTimeout(idle)
    }
    watch(socket)
    signal?.addEventListener('abort', onAbort, { once: true })
    const cleanup = (): void => signal?.removeEventListener('abort', onAbort)
    try {
      let reader = new SocketReader(socket, () => where)
      const handshake = await reader.read(18)
      if (!handshake.subarray(0, 8).equals(NBDMAGIC))
        throw new OperationError('NBD_PROTOCOL', `${where} is not an NBD server (no NBDMAGIC greeting)`)
      if (handshake.readBigUInt64BE(8) === OLDSTYLE_MAGIC)
        throw new OperationError('NBD_PROTOCOL', `${where} speaks the oldstyle NBD handshake, which carries no TLS`)
      if (!handshake.subarray(8, 16).equals(IHAVEOPT))
        throw new OperationError('NBD_PROTOCOL', `${where} sent an unknown handshake magic`)
      const serverFlags = handshake.readUInt16BE(16)
      if ((serverFlags & FLAG_FIXED_NEWSTYLE) === 0)
        throw new OperationError('NBD_PROTOCOL', `${where} does not offer fixed newstyle negotiation, needed for TLS`)
      const noZeroes = (serverFlags & FLAG_NO_ZEROES) !== 0
      const clientFlags = Buffer.alloc(4)
      clientFlags.writeUInt32BE(FLAG_FIXED_NEWSTYLE | (noZeroes ? FLAG_NO_ZEROES : 0))
      socket.write(clientFlags)

      // TLS comes first, so that the export name (which carries the XAPI session) never
      // travels in clear, and a server refusing it is left at once (proto.md: downgrade attacks).
      socket.write(option(OPT_STARTTLS))
      const tlsReply = await readOptionReply(reader, OPT_STARTTLS, where)
      if (tlsReply.type !== REP_ACK) {
        socket.write(option(OPT_ABORT))
        throw new OperationError(
          'NBD_REFUSED',
          `${where} refused TLS (${replyName(tlsReply.type)}${messageOf(tlsReply.data)}); xen-cr reads disks over NBD only with TLS`,
        )
      }
      if (reader.detach() !== 0)
        throw new OperationError('NBD_PROTOCOL', `${where} sent data between its STARTTLS answer and the TLS handshake`)
      // the TLS socket carries the timer from here on
      socket.setTimeout(0)
      socket = await upgrade(socket, info, pinned, where)
      watch(socket)
      reader = new SocketReader(socket, () => where)

      const size = await openExport(socket, reader, info.exportname, noZeroes, where)
      socket.setTimeout(0)
      return new NbdClient(socket, reader, where, size, idle, cleanup)
    } catch (error) {
      cleanup()
      socket.destroy()
      // read through a call: the check at the top narrowed `aborted` for the compiler
      if (isAborted(signal)) throw new AbortedError(`connection to ${where} aborted`, { cause: error })
      throw error
    }
  }

  /** `length` bytes at `offset` (both within the export); one read at a time. */
  async read(offset: number, length: number): Promise<Buffer> {
    if (this.#closed) throw new OperationError('NBD_CONNECTION', `${this.#where}: the NBD connection is closed`)
    if (this.#busy) throw new OperationError('NBD_PROTOCOL', `${this.#where}: one NBD read at a time`)
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0)
      throw new RangeError(`NBD read of ${length} bytes at ${offset}: not a valid range`)
    if (length > NBD_MAX_READ || offset + length > this.size)
      throw new RangeError(`NBD read of ${length} bytes at ${offset}: beyond the export (${this.size}) or too large`)
    this.#busy = true
    this.#socket.setTimeout(this.#idleTimeoutMs)
    try {
      const handle = ++this.#handle
      this.#socket.write(request(CMD_READ, handle, offset, length))
      const head = await this.#reader.read(16)
      const magic = head.readUInt32BE(0)
      if (magic === STRUCTURED_REPLY_MAGIC)
        throw new OperationError('NBD_PROTOCOL', `${this.#where} sent a structured reply that was not negotiated`)
      if (magic !== SIMPLE_REPLY_MAGIC)
        throw new OperationError('NBD_PROTOCOL', `${this.#where} sent a reply with a bad magic`)
      if (head.readBigUInt64BE(8) !== handle)
        throw new OperationError('NBD_PROTOCOL', `${this.#where} answered a request that was not sent`)
      const errno = head.readUInt32BE(4)
      if (errno !== 0)
        throw new OperationError(
          'NBD_READ_FAILED',
          `${this.#where}: reading ${length} bytes at offset ${offset} failed with error ${errno}`,
        )
      return await this.#reader.read(length)
    } catch (error) {
      // A reply half read leaves the stream out of step: the connection cannot be used again.
      this.#closed = true
      this.#socket.destroy()
      this.#cleanup()
      throw error
    } finally {
      this.#busy = false
      this.#socket.setTimeout(0)
    }
  }

  /** Ends the session politely (`NBD_CMD_DISC`, then TLS and TCP shut down). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#cleanup()
    const socket = this.#socket
    await new Promise<void>(resolve => {
      const done = (): void => {
        clearTimeout(timer)
        resolve()
      }
      // A server that never closes its side must not hold the caller.
      const timer = setTimeout(() => {
        socket.destroy()
        done()
      }, 5_000)
      socket.once('close', done)
      socket.resume()
      socket.end(request(CMD_DISC, ++this.#handle, 0, 0))
    })
  }
}

/** The DER of the PEM certificate XAPI gave for the host; the TLS peer must present exactly it. */
function pinnedCertificate(pem: string, where: string): Buffer {
  try {
    return new X509Certificate(pem).raw
  } catch (error) {
    throw new OperationError('NBD_TLS', `the certificate XAPI gave for ${where} cannot be read`, { cause: error })
  }
}

/**
 * TLS on the negotiated socket. XAPI hands out each host's own certificate with the NBD info;
 * the peer must present that very certificate (compared byte for byte), which also holds when it
 * is self-signed or its CA is unknown here — so the chain itself is not checked, only the pin.
 */
function upgrade(socket: Socket, info: NbdExportInfo, pinned: Buffer, where: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const tls = connectTls({
      socket,
      rejectUnauthorized: false,
      ...(isIP(info.subject) === 0 && info.subject !== '' ? { servername: info.subject } : {}),
    })
    const fail = (error: Error): void => {
      tls.destroy()
      reject(
        isXenCrError(error)
          ? error
          : new OperationError('NBD_TLS', `TLS with ${where} failed: ${error.message}`, { cause: error }),
      )
    }
    const onClose = (): void => fail(new OperationError('NBD_TLS', `${where} closed the connection during TLS`))
    tls.once('error', fail)
    tls.once('close', onClose)
    tls.once('secureConnect', () => {
      const peer = tls.getPeerCertificate()
      if (peer.raw === undefined || !peer.raw.equals(pinned)) {
        fail(
          new OperationError(
            'NBD_TLS',
            `${where} presented a certificate other than the one XAPI announced for it; not reading from it`,
          ),
        )
        return
      }
      tls.off('error', fail)
      tls.off('close', onClose)
      resolve(tls)
    })
  })
}

interface OptionReply {
  readonly type: number
  readonly data: Buffer
}

async function readOptionReply(reader: SocketReader, sent: number, where: string): Promise<OptionReply> {
  const head = await reader.read(20)
  if (head.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC)
    throw new OperationError('NBD_PROTOCOL', `${where} sent an option reply with a bad magic`)
  if (head.readUInt32BE(8) !== sent)
    throw new OperationError('NBD_PROTOCOL', `${where} answered option ${head.readUInt32BE(8)}, not ${sent}`)
  const type = head.readUInt32BE(12)
  const length = head.readUInt32BE(16)
  if (length > MAX_OPTION_REPLY)
    throw new OperationError('NBD_PROTOCOL', `${where} sent an option reply of ${length} bytes`)
  return { type, data: length === 0 ? Buffer.alloc(0) : await reader.read(length) }
}

function messageOf(data: Buffer): string {
  const text = data.toString('utf8').trim()
  return text === '' ? '' : `: ${text}`
}

/** `NBD_OPT_GO`, or `NBD_OPT_EXPORT_NAME` where the server does not know GO; resolves to the size. */
async function openExport(
  socket: Socket,
  reader: SocketReader,
  exportName: string,
  noZeroes: boolean,
  where: string,
): Promise<number> {
  const name = Buffer.from(exportName, 'utf8')
  const go = Buffer.alloc(4 + name.length + 2)
  go.writeUInt32BE(name.length, 0)
  name.copy(go, 4)
  // no information request: the server sends NBD_INFO_EXPORT (size, flags) regardless
  go.writeUInt16BE(0, 4 + name.length)
  socket.write(option(OPT_GO, go))
  let size: number | undefined
  for (;;) {
    const reply = await readOptionReply(reader, OPT_GO, where)
    if (reply.type === REP_INFO) {
      if (reply.data.length >= 12 && reply.data.readUInt16BE(0) === INFO_EXPORT)
        size = Number(reply.data.readBigUInt64BE(2))
      continue
    }
    if (reply.type === REP_ACK) {
      if (size === undefined)
        throw new OperationError('NBD_PROTOCOL', `${where} accepted the export without saying its size`)
      return size
    }
    if (reply.type === REP_ERR_UNSUP) break
    if (reply.type >= 0x80000000) {
      socket.write(option(OPT_ABORT))
      throw new OperationError(
        'NBD_REFUSED',
        `${where} refused the export (${replyName(reply.type)}${messageOf(reply.data)}); the VDI may be in use or the session expired`,
      )
    }
    throw new OperationError('NBD_PROTOCOL', `${where} sent an unexpected ${replyName(reply.type)} to NBD_OPT_GO`)
  }
  // An older server: this option cannot fail politely — the server just closes on a bad name.
  socket.write(option(OPT_EXPORT_NAME, name))
  let answer: Buffer
  try {
    answer = await reader.read(noZeroes ? 10 : 134)
  } catch (error) {
    throw new OperationError('NBD_REFUSED', `${where} closed the connection on the export name`, { cause: error })
  }
  return Number(answer.readBigUInt64BE(0))
}
