import { once } from 'node:events'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { TLSSocket } from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { hostCertificate, type HostCertificate } from '../lab/nbd/certificate.js'
import { NbdClient } from './nbd-client.js'
import type { NbdExportInfo } from './nbd-info.js'

// A scripted NBD server written here from proto.md, independent of the lab's, so that each test
// can make it misbehave in one way: refuse TLS, not know NBD_OPT_GO, fail a read, never answer.

const SIZE = 64 * 1024 * 1024
const EXPORT = '/vdi-uuid?session_id=OpaqueRef:secret'

interface Script {
  /** reply to NBD_OPT_STARTTLS; default ACK */
  readonly starttls?: 'ack' | 'policy'
  /** reply to NBD_OPT_GO; default INFO + ACK */
  readonly go?: 'info' | 'unsup'
  readonly noZeroes?: boolean
  /** errno for reads at this offset */
  readonly failAt?: number
  /** reads at this offset are never answered */
  readonly hangAt?: number
}

interface Seen {
  options: number[]
  names: string[]
  commands: number[]
  clearNames: string[]
}

/** byte i of the export */
const pattern = (offset: number, length: number): Buffer => {
  const out = Buffer.alloc(length)
  for (let i = 0; i < length; i++) out[i] = (offset + i) % 251
  return out
}

function reader(socket: Socket): (n: number) => Promise<Buffer> {
  let buffered = Buffer.alloc(0)
  let waiting: { n: number; resolve: (b: Buffer) => void } | undefined
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    if (waiting !== undefined && buffered.length >= waiting.n) {
      const { n, resolve } = waiting
      waiting = undefined
      const out = buffered.subarray(0, n)
      buffered = buffered.subarray(n)
      resolve(out)
    }
  })
  return n =>
    new Promise(resolve => {
      if (buffered.length >= n) {
        const out = buffered.subarray(0, n)
        buffered = buffered.subarray(n)
        resolve(out)
      } else waiting = { n, resolve }
    })
}

function optionReply(option: number, type: number, data = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(20)
  head.writeBigUInt64BE(0x3e889045565a9n, 0)
  head.writeUInt32BE(option, 8)
  head.writeUInt32BE(type, 12)
  head.writeUInt32BE(data.length, 16)
  return Buffer.concat([head, data])
}

async function serve(raw: Socket, cert: HostCertificate, script: Script, seen: Seen): Promise<void> {
  raw.on('error', () => undefined)
  const greeting = Buffer.alloc(18)
  Buffer.from('NBDMAGICIHAVEOPT').copy(greeting)
  greeting.writeUInt16BE(1 | (script.noZeroes === false ? 0 : 2), 16)
  raw.write(greeting)
  let read = reader(raw)
  const clientFlags = (await read(4)).readUInt32BE(0)
  let socket: Socket = raw
  let tls = false
  for (;;) {
    const head = await read(16)
    const option = head.readUInt32BE(8)
    const data = await read(head.readUInt32BE(12))
    seen.options.push(option)
    if (option === 5) {
      if (script.starttls === 'policy') {
        socket.write(optionReply(5, 0x80000002, Buffer.from('no TLS here')))
        continue
      }
      socket.write(optionReply(5, 1))
      raw.removeAllListeners('data')
      const secure = new TLSSocket(raw, { isServer: true, key: cert.keyPem, cert: cert.certPem })
      secure.on('error', () => undefined)
      socket = secure
      read = reader(secure)
      tls = true
      continue
    }
    if (option === 2) {
      socket.end()
      return
    }
    if (option === 7) {
      const name = data.subarray(4, 4 + data.readUInt32BE(0)).toString()
      ;(tls ? seen.names : seen.clearNames).push(name)
      if (script.go === 'unsup') {
        socket.write(optionReply(7, 0x80000001))
        continue
      }
      const info = Buffer.alloc(12)
      info.writeUInt16BE(0, 0)
      info.writeBigUInt64BE(BigInt(SIZE), 2)
      info.writeUInt16BE(1 | 2, 10)
      socket.write(optionReply(7, 3, info))
      socket.write(optionReply(7, 1))
      break
    }
    if (option === 1) {
      ;(tls ? seen.names : seen.clearNames).push(data.toString())
      const answer = Buffer.alloc((clientFlags & 2) !== 0 ? 10 : 134)
      answer.writeBigUInt64BE(BigInt(SIZE), 0)
      answer.writeUInt16BE(1, 8)
      socket.write(answer)
      break
    }
    socket.write(optionReply(option, 0x80000001))
  }
  for (;;) {
    const request = await read(28)
    const type = request.readUInt16BE(6)
    seen.commands.push(type)
    if (type === 2) {
      socket.end()
      return
    }
    const handle = request.subarray(8, 16)
    const offset = Number(request.readBigUInt64BE(16))
    const length = request.readUInt32BE(24)
    if (offset === script.hangAt) continue
    const reply = Buffer.alloc(16)
    reply.writeUInt32BE(0x67446698, 0)
    reply.writeUInt32BE(offset === script.failAt ? 5 : 0, 4)
    handle.copy(reply, 8)
    socket.write(offset === script.failAt ? reply : Buffer.concat([reply, pattern(offset, length)]))
  }
}

const servers: Server[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.close()
    await once(server, 'close').catch(() => undefined)
  }
})

const certificate = hostCertificate('nbd-host', '127.0.0.1')

async function start(script: Script = {}): Promise<{ info: NbdExportInfo; seen: Seen }> {
  const seen: Seen = { options: [], names: [], commands: [], clearNames: [] }
  const sockets = new Set<Socket>()
  const server = createServer(socket => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    void serve(socket, certificate, script, seen).catch(() => socket.destroy())
  })
  server.on('close', () => sockets.forEach(s => s.destroy()))
  const close = server.close.bind(server)
  server.close = (callback?: (error?: Error) => void) => {
    sockets.forEach(s => s.destroy())
    return close(callback)
  }
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    info: { exportname: EXPORT, address: '127.0.0.1', port, cert: certificate.certPem, subject: 'nbd-host' },
    seen,
  }
}

describe('NbdClient', () => {
  it('negotiates TLS first, opens the export with NBD_OPT_GO and reads exact ranges', async () => {
    const { info, seen } = await start()
    const client = await NbdClient.connect(info)
    expect(client.size).toBe(SIZE)
    expect((await client.read(0, 2 * 1024 * 1024)).equals(pattern(0, 2 * 1024 * 1024))).toBe(true)
    expect((await client.read(SIZE - 512, 512)).equals(pattern(SIZE - 512, 512))).toBe(true)
    await client.close()
    expect(seen.options).toEqual([5, 7])
    expect(seen.names).toEqual([EXPORT])
    expect(seen.clearNames).toEqual([])
    expect(seen.commands).toEqual([0, 0, 2])
  })

  it('falls back to NBD_OPT_EXPORT_NAME on a server without NBD_OPT_GO, with and without the 124 zero bytes', async () => {
    for (const noZeroes of [true, false]) {
      const { info, seen } = await start({ go: 'unsup', noZeroes })
      const client = await NbdClient.connect(info)
      expect(client.size).toBe(SIZE)
      expect((await client.read(4096, 100)).equals(pattern(4096, 100))).toBe(true)
      await client.close()
      expect(seen.options).toEqual([5, 7, 1])
    }
  })

  it('refuses a server that presents another certificate than the announced one, before sending the export name', async () => {
    const { info, seen } = await start()
    const other = hostCertificate('nbd-host', '127.0.0.1')
    await expect(NbdClient.connect({ ...info, cert: other.certPem })).rejects.toMatchObject({ code: 'NBD_TLS' })
    expect(seen.names).toEqual([])
    expect(seen.clearNames).toEqual([])
  })

  it('leaves a server that refuses TLS without sending the export (and its session) in clear', async () => {
    const { info, seen } = await start({ starttls: 'policy' })
    await expect(NbdClient.connect(info)).rejects.toMatchObject({
      code: 'NBD_REFUSED',
      message: expect.stringContaining('NBD_REP_ERR_POLICY: no TLS here') as string,
    })
    expect(seen.clearNames).toEqual([])
    // STARTTLS, then at most an NBD_OPT_ABORT before the client hangs up
    expect(seen.options[0]).toBe(5)
    expect(seen.options.filter(o => o !== 5 && o !== 2)).toEqual([])
  })

  it('reports a failed read with its error number and refuses reads outside the export', async () => {
    const { info } = await start({ failAt: 8192 })
    const client = await NbdClient.connect(info)
    await expect(client.read(SIZE - 10, 11)).rejects.toBeInstanceOf(RangeError)
    await expect(client.read(8192, 512)).rejects.toMatchObject({
      code: 'NBD_READ_FAILED',
      message: expect.stringContaining('failed with error 5') as string,
    })
    // the stream may be out of step after a failure: the connection is not used again
    await expect(client.read(0, 512)).rejects.toMatchObject({ code: 'NBD_CONNECTION' })
  })

  it('ends a read the server never answers: by the abort signal, and by the idle timeout', async () => {
    const { info } = await start({ hangAt: 0 })
    const controller = new AbortController()
    const client = await NbdClient.connect(info, { signal: controller.signal })
    const pending = client.read(0, 512)
    setTimeout(() => controller.abort(), 50)
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' })

    const idle = await NbdClient.connect(info, { idleTimeoutMs: 100 })
    // idle between reads is fine: the timer runs only while an answer is awaited
    await new Promise(resolve => setTimeout(resolve, 250))
    expect((await idle.read(512, 10)).equals(pattern(512, 10))).toBe(true)
    await expect(idle.read(0, 512)).rejects.toMatchObject({ code: 'NBD_CONNECTION' })
  })

  it('says so when nothing listens', async () => {
    const { info } = await start()
    const server = servers.pop()!
    server.close()
    await once(server, 'close')
    await expect(NbdClient.connect(info)).rejects.toMatchObject({ code: 'NBD_CONNECTION' })
  })
})
