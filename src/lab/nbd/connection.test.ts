/**
 * The NBD server's protocol edges, byte for byte, with a hand-written client: what libnbd and
 * qemu never send in the interop test (options before STARTTLS, malformed GO data, reads past
 * the end, writes to a read-only export) must get the reply the protocol names, and the
 * connection must stay in step after it. The counters must see exactly the bytes read.
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import type { Duplex } from 'node:stream'
import { createSecureContext } from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { ByteReader } from './byte-reader.js'
import { hostCertificate } from './certificate.js'
import type { NbdConnectionHost } from './connection.js'
import { NbdServer } from './nbd-server.js'
import {
  CMD,
  ERRNO,
  IHAVEOPT,
  INFO,
  NBD_MAGIC,
  OPT,
  OPTION_REPLY_MAGIC,
  REP,
  REQUEST_MAGIC,
  TRANSMIT,
} from './protocol.js'

const identity = hostCertificate('nbd-test', '127.0.0.1')
const DISK = Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 7) & 0xff))

let server: NbdServer | undefined
const served: number[] = []

afterEach(async () => {
  await server?.close()
  server = undefined
  served.length = 0
})

async function listen(tls: NbdConnectionHost['tls'], offline = false): Promise<number> {
  const host: NbdConnectionHost = {
    tls,
    secureContext: createSecureContext({ cert: identity.certPem, key: identity.keyPem }),
    open: name =>
      name === 'disk'
        ? {
            ok: true,
            export: { size: DISK.length, read: async (offset, length) => DISK.subarray(offset, offset + length) },
          }
        : { ok: false, reason: name === 'secret' ? 'denied' : 'unknown', message: `no ${name}` },
    served: (_name, bytes) => served.push(bytes),
  }
  server = await NbdServer.listen({ address: '127.0.0.1', port: 0, connectionHost: () => (offline ? undefined : host) })
  return server.port
}

/** A client at the option-haggling stage. */
class Client {
  stream: Duplex
  reader: ByteReader

  constructor(readonly socket: Socket) {
    this.stream = socket
    this.reader = new ByteReader(socket)
  }

  static async open(port: number, flags = 3): Promise<Client> {
    const socket = connect({ host: '127.0.0.1', port })
    await once(socket, 'connect')
    const client = new Client(socket)
    const greeting = await client.reader.read(18)
    expect(greeting.readBigUInt64BE(0)).toBe(NBD_MAGIC)
    expect(greeting.readBigUInt64BE(8)).toBe(IHAVEOPT)
    expect(greeting.readUInt16BE(16)).toBe(3)
    const clientFlags = Buffer.alloc(4)
    clientFlags.writeUInt32BE(flags)
    socket.write(clientFlags)
    return client
  }

  option(option: number, data: Buffer = Buffer.alloc(0)): void {
    const head = Buffer.alloc(16)
    head.writeBigUInt64BE(IHAVEOPT, 0)
    head.writeUInt32BE(option, 8)
    head.writeUInt32BE(data.length, 12)
    this.stream.write(Buffer.concat([head, data]))
  }

  async reply(): Promise<{ option: number; type: number; data: Buffer }> {
    const head = await this.reader.read(20)
    expect(head.readBigUInt64BE(0)).toBe(OPTION_REPLY_MAGIC)
    return {
      option: head.readUInt32BE(8),
      type: head.readUInt32BE(12),
      data: await this.reader.read(head.readUInt32BE(16)),
    }
  }

  async startTls(): Promise<void> {
    this.option(OPT.STARTTLS)
    expect(await this.reply()).toMatchObject({ option: OPT.STARTTLS, type: REP.ACK })
    this.reader.detach()
    const tls = tlsConnect({ socket: this.socket, ca: identity.certPem, servername: 'nbd-test' })
    await once(tls, 'secureConnect')
    this.stream = tls
    this.reader = new ByteReader(tls)
  }

  /** NBD_OPT_GO for `name`, asking for the name info; the replies until ACK or an error. */
  async go(name: string, option: number = OPT.GO): Promise<{ type: number; data: Buffer }[]> {
    const nameBytes = Buffer.from(name)
    const data = Buffer.alloc(4 + nameBytes.length + 4)
    data.writeUInt32BE(nameBytes.length, 0)
    nameBytes.copy(data, 4)
    data.writeUInt16BE(1, 4 + nameBytes.length)
    data.writeUInt16BE(INFO.NAME, 6 + nameBytes.length)
    this.option(option, data)
    const replies: { type: number; data: Buffer }[] = []
    for (;;) {
      const reply = await this.reply()
      replies.push(reply)
      if (reply.type !== REP.INFO) return replies
    }
  }

  request(type: number, offset: number, length: number, payload = Buffer.alloc(0)): void {
    const request = Buffer.alloc(28)
    request.writeUInt32BE(REQUEST_MAGIC, 0)
    request.writeUInt16BE(type, 6)
    request.writeBigUInt64BE(BigInt(offset + 1), 8) // the cookie: anything, echoed back
    request.writeBigUInt64BE(BigInt(offset), 16)
    request.writeUInt32BE(length, 24)
    this.stream.write(Buffer.concat([request, payload]))
  }

  /** A simple reply: its error, cookie, and `length` bytes of data when it succeeded. */
  async simpleReply(length: number): Promise<{ error: number; cookie: bigint; data: Buffer }> {
    const head = await this.reader.read(16)
    expect(head.readUInt32BE(0)).toBe(0x67446698)
    const error = head.readUInt32BE(4)
    return {
      error,
      cookie: head.readBigUInt64BE(8),
      data: error === 0 ? await this.reader.read(length) : Buffer.alloc(0),
    }
  }

  async closed(): Promise<boolean> {
    return this.reader.read(1).then(
      () => false,
      () => true,
    )
  }
}

describe('the lab NBD server', () => {
  it('requires TLS first: options get TLS_REQD, EXPORT_NAME hangs up', async () => {
    const port = await listen('required')
    const client = await Client.open(port)
    expect((await client.go('disk'))[0]).toMatchObject({ type: REP.ERR_TLS_REQD })
    client.option(OPT.LIST)
    expect(await client.reply()).toMatchObject({ option: OPT.LIST, type: REP.ERR_TLS_REQD })
    client.option(OPT.EXPORT_NAME, Buffer.from('disk'))
    expect(await client.closed()).toBe(true)
  })

  it('serves GO over TLS: export info, block sizes, the name asked for, then reads', async () => {
    const port = await listen('required')
    const client = await Client.open(port)
    await client.startTls()
    client.option(OPT.STARTTLS)
    expect(await client.reply()).toMatchObject({ type: REP.ERR_INVALID })
    client.option(OPT.STRUCTURED_REPLY)
    expect(await client.reply()).toMatchObject({ type: REP.ERR_UNSUP })
    expect((await client.go('nothing'))[0]).toMatchObject({ type: REP.ERR_UNKNOWN })
    expect((await client.go('secret'))[0]).toMatchObject({ type: REP.ERR_POLICY })
    const info = await client.go('disk', OPT.INFO)
    expect(info.map(reply => reply.type)).toEqual([REP.INFO, REP.INFO, REP.INFO, REP.ACK])
    expect(info[0]!.data.readBigUInt64BE(2)).toBe(BigInt(DISK.length))
    expect(info[0]!.data.readUInt16BE(10)).toBe(TRANSMIT.HAS_FLAGS | TRANSMIT.READ_ONLY | TRANSMIT.CAN_MULTI_CONN)
    expect(info[1]!.data.readUInt32BE(10)).toBe(32 * 1024 * 1024)
    expect(info[2]!.data.subarray(2).toString()).toBe('disk')
    expect((await client.go('disk')).at(-1)).toMatchObject({ type: REP.ACK })

    client.request(CMD.READ, 1000, 5000)
    expect(await client.simpleReply(5000)).toEqual({ error: 0, cookie: 1001n, data: DISK.subarray(1000, 6000) })
    client.request(CMD.READ, DISK.length - 10, 11)
    expect(await client.simpleReply(0)).toMatchObject({ error: ERRNO.EINVAL, cookie: BigInt(DISK.length - 9) })
    client.request(CMD.WRITE, 0, 3, Buffer.from('abc'))
    expect(await client.simpleReply(0)).toMatchObject({ error: ERRNO.EPERM, cookie: 1n })
    client.request(CMD.FLUSH, 0, 0)
    expect(await client.simpleReply(0)).toMatchObject({ error: ERRNO.EINVAL })
    // still in step after the refusals
    client.request(CMD.READ, 0, 16)
    expect((await client.simpleReply(16)).data).toEqual(DISK.subarray(0, 16))
    client.request(CMD.DISC, 0, 0)
    expect(await client.closed()).toBe(true)
    expect(served).toEqual([5000, 16])
  })

  it('serves EXPORT_NAME without TLS where TLS is refused, with the 124 zero bytes unless NO_ZEROES', async () => {
    const port = await listen('refused')
    const client = await Client.open(port, 1)
    client.option(OPT.STARTTLS)
    expect(await client.reply()).toMatchObject({ type: REP.ERR_POLICY })
    client.option(OPT.GO, Buffer.from([0, 0, 0, 9]))
    expect(await client.reply()).toMatchObject({ type: REP.ERR_INVALID })
    client.option(OPT.EXPORT_NAME, Buffer.from('disk'))
    const tail = await client.reader.read(10 + 124)
    expect(tail.readBigUInt64BE(0)).toBe(BigInt(DISK.length))
    expect(tail.subarray(10).equals(Buffer.alloc(124))).toBe(true)
    client.request(CMD.READ, DISK.length - 4, 4)
    expect((await client.simpleReply(4)).data).toEqual(DISK.subarray(-4))
    client.socket.destroy()
  })

  it('hangs up on an unknown export by EXPORT_NAME, a bad magic, and where no network allows NBD', async () => {
    const port = await listen('refused')
    const unknown = await Client.open(port)
    unknown.option(OPT.EXPORT_NAME, Buffer.from('nothing'))
    expect(await unknown.closed()).toBe(true)
    const garbled = await Client.open(port)
    garbled.socket.write(Buffer.alloc(16))
    expect(await garbled.closed()).toBe(true)
    await server!.close()
    const offline = await listen('refused', true)
    const socket = connect({ host: '127.0.0.1', port: offline })
    expect(
      await new ByteReader(socket).read(1).then(
        () => 'greeted',
        () => 'dropped',
      ),
    ).toBe('dropped')
  })
})
