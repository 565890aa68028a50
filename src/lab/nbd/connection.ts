/**
 * One NBD connection, server side, as a state machine over exact-size reads: the fixed newstyle
 * greeting, option haggling (STARTTLS, EXPORT_NAME, INFO/GO, ABORT; anything else refused with
 * the error the protocol names), then the transmission phase with simple replies. Exports are
 * read-only: READ and DISC are served, writes get EPERM. In TLS-required mode (XAPI's FORCEDTLS,
 * a network with purpose `nbd`) every option but STARTTLS and ABORT is refused with
 * `NBD_REP_ERR_TLS_REQD`, and EXPORT_NAME, which cannot be refused, closes the connection.
 */
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { TLSSocket, type SecureContext } from 'node:tls'
import { ByteReader } from './byte-reader.js'
import {
  CMD,
  ERRNO,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  IHAVEOPT,
  INFO,
  MAX_REQUEST,
  NBD_MAGIC,
  OPT,
  REP,
  REQUEST_MAGIC,
  REQUEST_SIZE,
  TRANSMIT,
  optionReply,
  simpleReply,
} from './protocol.js'

/** A disk a client may read once it picked it by name. */
export interface NbdExport {
  readonly size: number
  read(offset: number, length: number): Promise<Buffer>
}

/** What opening an export by name gives: the export, or why not (sent to the client as text). */
export type NbdOpenResult =
  | { readonly ok: true; readonly export: NbdExport }
  | { readonly ok: false; readonly reason: 'unknown' | 'denied'; readonly message: string }

/** What a connection needs from the host that accepted it. */
export interface NbdConnectionHost {
  /** `tls`: STARTTLS required first; `plain`: STARTTLS refused */
  readonly tls: 'required' | 'refused'
  readonly secureContext: SecureContext
  open(exportName: string): NbdOpenResult
  /** a client entered the transmission phase on an export */
  opened?(exportName: string): void
  /** bytes of a successful read went out */
  served?(exportName: string, bytes: number): void
}

/** An option's data past this is not an option any client sends. */
const MAX_OPTION = 64 * 1024
const TRANSMISSION_FLAGS = TRANSMIT.HAS_FLAGS | TRANSMIT.READ_ONLY | TRANSMIT.CAN_MULTI_CONN

/** The peer broke the protocol: the connection is closed without a word, as the protocol asks. */
class ProtocolViolation extends Error {}

function u16(value: number): Buffer {
  const out = Buffer.alloc(2)
  out.writeUInt16BE(value)
  return out
}

/** Writes and waits for the stream to take more (or to be gone). */
function send(stream: Duplex, data: Buffer): Promise<void> {
  if (stream.write(data)) return Promise.resolve()
  return new Promise(resolve => {
    const done = (): void => {
      stream.off('drain', done)
      stream.off('close', done)
      resolve()
    }
    stream.on('drain', done)
    stream.on('close', done)
  })
}

/** Serves one accepted socket until the client disconnects or breaks the protocol; never rejects. */
export async function serveNbdConnection(socket: Socket, host: NbdConnectionHost): Promise<void> {
  let stream: Duplex = socket
  let reader = new ByteReader(socket)
  try {
    const greeting = Buffer.alloc(18)
    greeting.writeBigUInt64BE(NBD_MAGIC, 0)
    greeting.writeBigUInt64BE(IHAVEOPT, 8)
    greeting.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16)
    await send(stream, greeting)
    const clientFlags = (await reader.read(4)).readUInt32BE(0)
    if ((clientFlags & ~(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)) !== 0)
      throw new ProtocolViolation('unknown client flags')
    const noZeroes = (clientFlags & FLAG_NO_ZEROES) !== 0
    let secured = false

    for (;;) {
      const head = await reader.read(16)
      if (head.readBigUInt64BE(0) !== IHAVEOPT) throw new ProtocolViolation('option without IHAVEOPT')
      const option = head.readUInt32BE(8)
      const length = head.readUInt32BE(12)
      if (length > MAX_OPTION) throw new ProtocolViolation('option data too long')
      const data = await reader.read(length)
      const reply = (type: number, payload?: Buffer): Promise<void> => send(stream, optionReply(option, type, payload))
      const refuse = (type: number, message: string): Promise<void> => reply(type, Buffer.from(message, 'utf8'))

      if (host.tls === 'required' && !secured && option !== OPT.STARTTLS && option !== OPT.ABORT) {
        if (option === OPT.EXPORT_NAME) throw new ProtocolViolation('EXPORT_NAME before STARTTLS')
        await refuse(REP.ERR_TLS_REQD, 'TLS is required: send NBD_OPT_STARTTLS first')
        continue
      }
      switch (option) {
        case OPT.STARTTLS: {
          if (length !== 0) await refuse(REP.ERR_INVALID, 'STARTTLS takes no data')
          else if (host.tls === 'refused') await refuse(REP.ERR_POLICY, 'this server does not offer TLS')
          else if (secured) await refuse(REP.ERR_INVALID, 'TLS is already on')
          else {
            await reply(REP.ACK)
            // the client waits for the ACK before its ClientHello: nothing plain is in flight
            if (reader.buffered !== 0) throw new ProtocolViolation('data after STARTTLS')
            reader.detach()
            const tls = new TLSSocket(socket, { isServer: true, secureContext: host.secureContext })
            tls.on('error', () => socket.destroy())
            stream = tls
            reader = new ByteReader(tls)
            secured = true
          }
          continue
        }
        case OPT.ABORT:
          await reply(REP.ACK)
          reader.detach()
          return hangUp(stream, socket)
        case OPT.EXPORT_NAME: {
          const name = data.toString('utf8')
          const opened = host.open(name)
          // EXPORT_NAME has no error reply: the protocol's only refusal is to hang up
          if (!opened.ok) throw new ProtocolViolation(opened.message)
          const tail = Buffer.alloc(10 + (noZeroes ? 0 : 124))
          tail.writeBigUInt64BE(BigInt(opened.export.size), 0)
          tail.writeUInt16BE(TRANSMISSION_FLAGS, 8)
          await send(stream, tail)
          host.opened?.(name)
          await transmit(stream, reader, name, opened.export, host)
          reader.detach()
          return hangUp(stream, socket)
        }
        case OPT.INFO:
        case OPT.GO: {
          const request = parseInfoRequest(data)
          if (request === undefined) {
            await refuse(REP.ERR_INVALID, 'malformed NBD_OPT_INFO/GO data')
            continue
          }
          const opened = host.open(request.name)
          if (!opened.ok) {
            await refuse(opened.reason === 'unknown' ? REP.ERR_UNKNOWN : REP.ERR_POLICY, opened.message)
            continue
          }
          const exportInfo = Buffer.alloc(12)
          exportInfo.writeUInt16BE(INFO.EXPORT, 0)
          exportInfo.writeBigUInt64BE(BigInt(opened.export.size), 2)
          exportInfo.writeUInt16BE(TRANSMISSION_FLAGS, 10)
          await reply(REP.INFO, exportInfo)
          // block sizes may be sent unasked; they tell the client the largest read we take
          const blockSize = Buffer.alloc(14)
          blockSize.writeUInt16BE(INFO.BLOCK_SIZE, 0)
          blockSize.writeUInt32BE(1, 2)
          blockSize.writeUInt32BE(4096, 6)
          blockSize.writeUInt32BE(MAX_REQUEST, 10)
          await reply(REP.INFO, blockSize)
          if (request.infos.includes(INFO.NAME))
            await reply(REP.INFO, Buffer.concat([u16(INFO.NAME), Buffer.from(request.name, 'utf8')]))
          await reply(REP.ACK)
          if (option === OPT.INFO) continue
          host.opened?.(request.name)
          await transmit(stream, reader, request.name, opened.export, host)
          reader.detach()
          return hangUp(stream, socket)
        }
        case OPT.LIST:
          await refuse(REP.ERR_POLICY, 'exports are VDIs named by uuid and session; they are not listed')
          continue
        default:
          // structured replies, meta contexts, extended headers: simple replies only here
          await refuse(REP.ERR_UNSUP, `option ${option} is not supported`)
      }
    }
  } catch {
    // a protocol violation, a TLS failure or a vanished peer: the connection just goes
    reader.detach()
    stream.destroy()
    socket.destroy()
  }
}

/** After ABORT or DISC: what was written goes out (and TLS says close_notify) before the socket closes. */
function hangUp(stream: Duplex, socket: Socket): void {
  stream.end()
  const force = setTimeout(() => socket.destroy(), 2000)
  force.unref()
  socket.once('close', () => clearTimeout(force))
}

/** NBD_OPT_INFO/GO data: name length, name, number of info requests, the requests. */
function parseInfoRequest(data: Buffer): { name: string; infos: number[] } | undefined {
  if (data.length < 6) return undefined
  const nameLength = data.readUInt32BE(0)
  if (4 + nameLength + 2 > data.length) return undefined
  const name = data.subarray(4, 4 + nameLength).toString('utf8')
  const count = data.readUInt16BE(4 + nameLength)
  if (4 + nameLength + 2 + 2 * count !== data.length) return undefined
  const infos: number[] = []
  for (let i = 0; i < count; i++) infos.push(data.readUInt16BE(4 + nameLength + 2 + 2 * i))
  return { name, infos }
}

/** The transmission phase: one request at a time, simple replies, until DISC or the end of the connection. */
async function transmit(
  stream: Duplex,
  reader: ByteReader,
  name: string,
  disk: NbdExport,
  host: NbdConnectionHost,
): Promise<void> {
  for (;;) {
    const request = await reader.read(REQUEST_SIZE)
    if (request.readUInt32BE(0) !== REQUEST_MAGIC) throw new ProtocolViolation('request without its magic')
    const type = request.readUInt16BE(6)
    const cookie = request.subarray(8, 16)
    const offset = Number(request.readBigUInt64BE(16))
    const length = request.readUInt32BE(24)
    switch (type) {
      case CMD.READ: {
        if (length > MAX_REQUEST || offset + length > disk.size) {
          await send(stream, simpleReply(ERRNO.EINVAL, cookie))
          break
        }
        let data: Buffer
        try {
          data = await disk.read(offset, length)
        } catch {
          await send(stream, simpleReply(ERRNO.EIO, cookie))
          break
        }
        await send(stream, Buffer.concat([simpleReply(0, cookie), data]))
        host.served?.(name, data.length)
        break
      }
      case CMD.DISC:
        return
      case CMD.WRITE:
        // the payload follows the request whatever the answer: it must be read to stay in step
        if (length > MAX_REQUEST) throw new ProtocolViolation('write larger than the announced maximum')
        await reader.read(length)
        await send(stream, simpleReply(ERRNO.EPERM, cookie))
        break
      case CMD.TRIM:
      case CMD.WRITE_ZEROES:
        await send(stream, simpleReply(ERRNO.EPERM, cookie))
        break
      default:
        // FLUSH, CACHE, BLOCK_STATUS (which needs structured replies) and unknown commands
        await send(stream, simpleReply(ERRNO.EINVAL, cookie))
    }
  }
}
