import { createServer } from 'node:http'
import type { IncomingMessage } from 'node:http'
import { connect } from 'node:net'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { rawRequest } from '../../../test/helpers/http-client.js'
import { EofBodyFront, parseRequestHead, readsBodyToEof } from './eof-body-front.js'

const MiB = 1024 * 1024

/** What the echo server saw of one request. */
interface Seen {
  method: string | undefined
  url: string | undefined
  bytes: number
  complete: boolean
  headers: IncomingMessage['headers']
}

let front: EofBodyFront
let url: string
let seen: Seen[]

beforeEach(async () => {
  seen = []
  // notes each request as it arrives, reads its body to the end, then answers (exact length)
  const http = createServer((req, res) => {
    const entry: Seen = { method: req.method, url: req.url, bytes: -1, complete: false, headers: req.headers }
    seen.push(entry)
    void (async () => {
      let bytes = 0
      for await (const chunk of req as AsyncIterable<Buffer>) bytes += chunk.length
      entry.bytes = bytes
      entry.complete = req.complete
      const body = JSON.stringify(entry)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) })
      res.end(body)
    })()
  })
  front = await EofBodyFront.listen(http, { address: '127.0.0.1', port: 0 })
  url = `http://127.0.0.1:${front.port}`
})
afterEach(async () => {
  await front.close()
})

describe('EofBodyFront', () => {
  it('reads the body of a length-less PUT to an import path until the client closes, then closes', async () => {
    const head =
      'PUT /import_raw_vdi?vdi=x HTTP/1.1\r\nHost: lab\r\nCookie: a=1\r\nCookie: b=2\r\nX-Two: 1\r\nx-two: 2\r\n\r\n'
    const body = Buffer.alloc(9 * MiB + 123, 5)
    const reply = await rawRequest(url, head, body)
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    expect(reply).toMatch(/\r\nConnection: close\r\n/i)
    expect(seen).toEqual([
      {
        method: 'PUT',
        url: '/import_raw_vdi?vdi=x',
        bytes: body.length,
        complete: true,
        headers: { host: 'lab', cookie: 'a=1; b=2', 'x-two': '1, 2' },
      },
    ])
  })

  it('serves /import (XVA) the same way, and takes a head that arrives a byte at a time', async () => {
    const head = 'PUT /import?sr_id=x HTTP/1.1\r\nHost: lab\r\n\r\n'
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(front.port, '127.0.0.1')
      const received: Buffer[] = []
      socket.on('data', (chunk: Buffer) => received.push(chunk))
      socket.on('error', reject)
      socket.on('close', () => resolve(Buffer.concat(received).toString('latin1')))
      socket.on('connect', () => {
        void (async () => {
          for (const byte of Buffer.from(head, 'latin1'))
            await new Promise<void>(done => socket.write(Buffer.from([byte]), () => done()))
          socket.end(Buffer.alloc(1000, 1))
        })()
      })
    })
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    expect(seen).toMatchObject([{ method: 'PUT', url: '/import?sr_id=x', bytes: 1000, complete: true }])
  })

  it('hands every other connection to the http.Server: keep-alive and pipelining as before', async () => {
    // three pipelined requests on one connection: a GET, a PUT with a length, then a
    // length-less PUT to an import path, which HTTP/1.1 (Node's parser) gives no body
    const requests =
      'GET /a HTTP/1.1\r\nHost: lab\r\n\r\n' +
      'PUT /import_raw_vdi HTTP/1.1\r\nHost: lab\r\nContent-Length: 5\r\n\r\nhello' +
      'PUT /import HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n'
    const reply = await rawRequest(url, requests, Buffer.alloc(0))
    expect(reply.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(3)
    expect(seen.map(({ method, url, bytes }) => ({ method, url, bytes }))).toEqual([
      { method: 'GET', url: '/a', bytes: 0 },
      { method: 'PUT', url: '/import_raw_vdi', bytes: 5 },
      { method: 'PUT', url: '/import', bytes: 0 },
    ])
  })

  it('leaves a length-less PUT elsewhere, or with a head it does not fully parse, to Node (no body, 400 for the rest)', async () => {
    // served by Node, the bytes after the head are a malformed next request
    const other = await rawRequest(
      url,
      'PUT /export_raw_vdi HTTP/1.1\r\nHost: lab\r\n\r\n',
      Buffer.from('not a request'),
    )
    expect(other).toContain('HTTP/1.1 400 Bad Request')
    // obs-fold: Node refuses it; the front must not serve it either
    const folded = await rawRequest(
      url,
      'PUT /import_raw_vdi HTTP/1.1\r\nHost: lab\r\nX-A: 1\r\n 2\r\n\r\n',
      Buffer.from('body'),
    )
    expect(folded).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/)
    expect(seen.map(({ method, url }) => ({ method, url }))).toEqual([{ method: 'PUT', url: '/export_raw_vdi' }])
  })

  it('ends every connection on close(), even one that has sent only half a head', async () => {
    const socket = connect(front.port, '127.0.0.1')
    const closed = new Promise<void>(resolve => socket.on('close', () => resolve()))
    socket.on('error', () => undefined)
    await new Promise<void>(resolve => socket.on('connect', () => socket.write('PUT /imp', () => resolve())))
    await front.close()
    await closed
    expect(socket.destroyed).toBe(true)
    front = await EofBodyFront.listen(createServer(), { address: '127.0.0.1', port: 0 })
  })
})

describe('parseRequestHead and readsBodyToEof', () => {
  const parse = (text: string): ReturnType<typeof parseRequestHead> => parseRequestHead(Buffer.from(text, 'latin1'))

  it('parses a well-formed head strictly and refuses what it does not fully understand', () => {
    expect(parse('PUT /import_raw_vdi?a=1 HTTP/1.0\r\nHost:  lab \r\nX-Empty:\r\n\r\n')).toEqual({
      method: 'PUT',
      url: '/import_raw_vdi?a=1',
      httpVersion: '1.0',
      rawHeaders: ['Host', 'lab', 'X-Empty', ''],
    })
    for (const bad of [
      'PUT /import HTTP/1.1\r\nHost: lab\r\n', // no empty line
      'PUT /import HTTP/2.0\r\n\r\n',
      'PUT  /import HTTP/1.1\r\n\r\n',
      'PUT /im port HTTP/1.1\r\n\r\n',
      'P(T /import HTTP/1.1\r\n\r\n',
      'PUT /import HTTP/1.1\r\nHost : lab\r\n\r\n',
      'PUT /import HTTP/1.1\r\nHost: lab\r\n folded\r\n\r\n',
      'PUT /import HTTP/1.1\r\nHost: l\nab\r\n\r\n',
      'PUT /import HTTP/1.1\r\n: empty name\r\n\r\n',
      'PUT /import HTTP/1.1\r\nno colon\r\n\r\n',
      '\r\nPUT /import HTTP/1.1\r\n\r\n',
    ]) {
      expect({ bad, head: parse(bad) }).toEqual({ bad, head: undefined })
    }
  })

  it('claims only a PUT under /import with neither Content-Length nor Transfer-Encoding', () => {
    const claims = (text: string): boolean =>
      readsBodyToEof(parse(text) ?? { method: '', url: '', httpVersion: '1.1', rawHeaders: [] })
    expect(claims('PUT /import_raw_vdi?vdi=x HTTP/1.1\r\nHost: lab\r\n\r\n')).toBe(true)
    expect(claims('PUT /import HTTP/1.1\r\n\r\n')).toBe(true)
    expect(claims('PUT http://lab/import_raw_vdi HTTP/1.1\r\n\r\n')).toBe(true)
    expect(claims('PUT /import_raw_vdi HTTP/1.1\r\ncontent-length: 0\r\n\r\n')).toBe(false)
    expect(claims('PUT /import_raw_vdi HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n')).toBe(false)
    expect(claims('POST /import_raw_vdi HTTP/1.1\r\n\r\n')).toBe(false)
    expect(claims('PUT /export_raw_vdi HTTP/1.1\r\n\r\n')).toBe(false)
  })
})
