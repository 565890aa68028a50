import { request } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import { connect } from 'node:net'

export interface RawResponse {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
  /** the body ended with an error (reset, premature close) rather than a clean end */
  aborted: boolean
}

/** GET with node:http, reading the whole (small, test-sized) body. */
export function httpGet(url: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers }, res => {
      const chunks: Buffer[] = []
      let aborted = false
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('error', () => {
        aborted = true
      })
      res.on('close', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          aborted: aborted || !res.complete,
        }),
      )
    })
    req.on('error', reject)
    req.end()
  })
}

/**
 * A request written by hand on a TCP socket, for what node:http will not send (no
 * Content-Length, a 1 PiB one, a body that stops early). Resolves with everything the server
 * sent once the connection closes.
 */
export function rawRequest(
  url: string,
  head: string,
  body: Buffer,
  options: { endAfterBody?: boolean } = {},
): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    const received: Buffer[] = []
    socket.on('data', (chunk: Buffer) => received.push(chunk))
    socket.on('error', () => undefined)
    socket.on('close', () => resolve(Buffer.concat(received).toString('latin1')))
    socket.on('connect', () => {
      socket.write(head)
      socket.write(body, () => {
        if (options.endAfterBody !== false) socket.end()
      })
    })
    socket.setTimeout(60_000, () => {
      socket.destroy()
      reject(new Error('raw request got no close from the server'))
    })
  })
}
