/**
 * The host certificate is hand-written DER: if a length, a tag or the signature input were
 * wrong, Node's parser (OpenSSL) would refuse it, the signature would not verify, or a TLS
 * client pinning it would fail the handshake.
 */
import { X509Certificate, createPublicKey } from 'node:crypto'
import { once } from 'node:events'
import { connect, createServer, type TLSSocket } from 'node:tls'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { hostCertificate } from './certificate.js'

describe('hostCertificate', () => {
  it('is a self-signed certificate naming the host and its address, signed by its key', () => {
    const now = new Date('2026-03-01T12:00:00Z')
    const { certPem, keyPem } = hostCertificate('source-host1', '127.0.0.5', now)
    const cert = new X509Certificate(certPem)
    expect(cert.subject).toBe('CN=source-host1')
    expect(cert.issuer).toBe('CN=source-host1')
    expect(cert.subjectAltName).toBe('DNS:source-host1, IP Address:127.0.0.5')
    expect(cert.ca).toBe(true)
    // Node's keyUsage is the extended key usage: serverAuth
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1'])
    expect(new Date(cert.validFrom).getTime()).toBe(now.getTime() - 3600_000)
    expect(new Date(cert.validTo).getUTCFullYear()).toBe(2036)
    expect(cert.verify(createPublicKey(keyPem))).toBe(true)
    expect(cert.checkHost('source-host1')).toBe('source-host1')
    expect(cert.checkIP('127.0.0.5')).toBe('127.0.0.5')
  })

  it('uses GeneralizedTime for dates from 2050 (RFC 5280)', () => {
    const cert = new X509Certificate(hostCertificate('h', '127.0.0.9', new Date('2045-06-01T00:00:00Z')).certPem)
    expect(new Date(cert.validTo).getUTCFullYear()).toBe(2055)
  })

  it('serves TLS to a client that pins it and checks the address', async () => {
    const { certPem, keyPem } = hostCertificate('lab-host', '127.0.0.1')
    const server = createServer({ cert: certPem, key: keyPem }, socket => socket.end('hello'))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    try {
      const client: TLSSocket = connect({
        host: '127.0.0.1',
        port: (server.address() as AddressInfo).port,
        ca: certPem,
      })
      const chunks: Buffer[] = []
      client.on('data', (chunk: Buffer) => chunks.push(chunk))
      await once(client, 'end')
      expect(client.authorized).toBe(true)
      expect(Buffer.concat(chunks).toString()).toBe('hello')
    } finally {
      server.close()
    }
  })
})
