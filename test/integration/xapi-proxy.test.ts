/**
 * What the lab never does on its own, put in front of it by a forwarding HTTP proxy on
 * loopback: a host without JSON-RPC (the client must fall back to XML-RPC, as xen-api does on
 * old XenServers), and a host that writes an HTTP error page inside a 200 export body
 * (xapi-project/xen-api#4603), which must not pass for disk data.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Lab } from '../../src/lab/start.js'
import { XapiClient } from '../../src/xapi/client.js'
import { exportVdi } from '../../src/xapi/transfer.js'
import { startTempLab } from '../helpers/lab.js'

let lab: Lab
let proxy: Server
let proxyUrl: string
const seen: string[] = []

function forward(req: IncomingMessage, res: ServerResponse): void {
  const upstream = new URL(req.url ?? '/', lab.pools[0]!.url)
  const out = request(
    upstream,
    { method: req.method, headers: { ...req.headers, host: upstream.host }, agent: false },
    answer => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      pipeline(answer, res).catch(() => res.destroy())
    },
  )
  out.on('error', () => res.destroy())
  pipeline(req, out).catch(() => out.destroy())
}

beforeAll(async () => {
  lab = await startTempLab({
    pools: [
      {
        name: 'p',
        srs: [{ name: 'sr', size: '1 GiB' }],
        vms: [{ name: 'vm', powerState: 'Halted', disks: [{ size: '8 MiB', filled: '4 MiB', seed: 3 }] }],
      },
    ],
  })
  proxy = createServer((req, res) => {
    seen.push(`${req.method} ${new URL(req.url ?? '/', 'http://x').pathname}`)
    if (req.method === 'POST' && req.url === '/jsonrpc') {
      // An old host: JSON-RPC lands on the XML-RPC handler, which answers in XML.
      req.resume()
      res
        .writeHead(200, { 'content-type': 'text/xml' })
        .end('<?xml version="1.0"?><methodResponse><fault/></methodResponse>')
      return
    }
    if (req.method === 'GET' && req.url?.startsWith('/export_raw_vdi') === true) {
      req.resume()
      res.writeHead(200, { 'content-type': 'application/vhd', connection: 'close' })
      res.end(
        'HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/html\r\n\r\n<html><body>VDI_IO_ERROR</body></html>',
      )
      return
    }
    forward(req, res)
  })
  await new Promise<void>(resolve => proxy.listen(0, '127.0.0.1', resolve))
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
})

afterAll(async () => {
  proxy?.closeAllConnections()
  await new Promise(resolve => proxy?.close(resolve))
  await lab?.stop()
})

describe('through a proxy', () => {
  it('falls back to XML-RPC on a host without JSON-RPC, with the same typed records', async () => {
    const { user, password } = lab.pools[0]!
    const client = await XapiClient.connect({ url: proxyUrl, user, password, transport: 'auto' })
    try {
      const vdis = [...(await client.getAllRecords('VDI')).values()].filter(vdi => vdi.virtual_size === 8 * 1024 * 1024)
      expect(vdis).toHaveLength(1)
      expect(seen).toContain('POST /jsonrpc')
      expect(seen).toContain('POST /xmlrpc')
    } finally {
      await client.close()
    }
  })

  it('refuses an HTTP error page inside a 200 export body', async () => {
    const { user, password } = lab.pools[0]!
    const client = await XapiClient.connect({ url: proxyUrl, user, password })
    try {
      const vdi = await client.getByUuid('VDI', lab.control.findVm('p', 'vm')!.vdis[0]!.uuid)
      const { stream, done } = await exportVdi(client, vdi, { format: 'vhd' })
      const consumed = pipeline(stream, new Writable({ write: (_chunk, _encoding, callback) => callback() }))
      await expect(consumed).rejects.toMatchObject({ code: 'TRANSFER_NOT_DISK_DATA' })
      await expect(done).rejects.toMatchObject({ code: 'TRANSFER_NOT_DISK_DATA' })
    } finally {
      await client.close()
    }
  })
})
