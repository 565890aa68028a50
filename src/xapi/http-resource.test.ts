import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DATA_HIGH_WATER_MARK, awaitResponse, drain, openRequest } from './http-resource.js'
import { VERIFY_TLS } from './tls.js'

const server = createServer((req, res) => {
  req.resume()
  req.on('end', () => res.end('ok'))
})
let base: URL

beforeAll(async () => {
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  base = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
})
afterAll(() => new Promise<void>(resolve => server.close(() => resolve())))

describe('openRequest', () => {
  it('gives a data-path socket and its response DATA_HIGH_WATER_MARK of buffer, not node’s 16 KiB', async () => {
    // http.request's own highWaterMark option never reaches a socket made by createConnection
    const req = openRequest(new URL('/import', base), {
      method: 'PUT',
      headers: { 'content-length': '2' },
      tls: VERIFY_TLS,
    })
    const response = awaitResponse(req, base)
    req.end('hi')
    const res: IncomingMessage = await response
    await drain(res)
    expect(res.socket.writableHighWaterMark).toBe(DATA_HIGH_WATER_MARK)
    expect(res.socket.readableHighWaterMark).toBe(DATA_HIGH_WATER_MARK)
    expect(res.readableHighWaterMark).toBe(DATA_HIGH_WATER_MARK)
  })
})
