/**
 * TLS handling of the client against a real HTTPS server on loopback with a self-signed
 * certificate (made by openssl for this test): untrusted certificates are refused unless the
 * pool allows them, and the refusal says so.
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTempDir } from '../../test/helpers/tmp.js'
import { ConnectionError } from '../errors.js'
import { XapiClient } from './client.js'

let tmp: Awaited<ReturnType<typeof makeTempDir>>
let server: Server
let url: string

beforeAll(async () => {
  tmp = await makeTempDir()
  const key = join(tmp.path, 'key.pem')
  const cert = join(tmp.path, 'cert.pem')
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
  ])
  // Not a XAPI host: whatever gets through TLS is answered 404.
  server = createServer({ key: await readFile(key), cert: await readFile(cert) }, (req, res) => {
    req.resume()
    res.writeHead(404).end('not here')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  server?.closeAllConnections()
  await new Promise(resolve => server?.close(resolve))
  await tmp?.remove()
})

describe('XapiClient.connect over TLS', () => {
  it('refuses a self-signed certificate with POOL_TLS naming the URL', async () => {
    const error = await XapiClient.connect({ url, user: 'root', password: 'tls-secret-1' }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConnectionError)
    expect(error).toMatchObject({ code: 'POOL_TLS', url })
    expect((error as Error).message).toContain(url)
    expect((error as Error).message).not.toContain('tls-secret-1')
  })

  it('accepts it when the pool allows unauthorized certificates (then finds no XAPI there)', async () => {
    const error = await XapiClient.connect({
      url,
      user: 'root',
      password: 'tls-secret-1',
      allowUnauthorized: true,
    }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'POOL_UNREACHABLE' })
    expect((error as Error).message).toMatch(/HTTP 404/)
  })
})
