/**
 * A lab host's TLS identity: an ECDSA P-256 key and a self-signed X.509 certificate naming the
 * host (CN and DNS subjectAltName) and its loopback address (IP subjectAltName), as a XAPI host
 * has its own `xapi-ssl.pem`; a client pins it as the one CA it trusts. Node can sign but has no certificate builder, so the DER is
 * written here: a TBSCertificate (RFC 5280 §4.1) signed with the key.
 */
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { isIPv4 } from 'node:net'

/** A host's key and certificate, PEM-encoded for `tls.createSecureContext` and `host.get_server_certificate`. */
export interface HostCertificate {
  readonly certPem: string
  readonly keyPem: string
}

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content])
}

const sequence = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items))
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items))
const octets = (content: Buffer): Buffer => tlv(0x04, content)
const utf8 = (text: string): Buffer => tlv(0x0c, Buffer.from(text, 'utf8'))
/** A BIT STRING of whole bytes (no unused bits). */
const bits = (content: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), content]))
const explicit = (n: number, content: Buffer): Buffer => tlv(0xa0 | n, content)

function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number)
  const out = [40 * first + second]
  for (const arc of rest) {
    const base128: number[] = [arc & 0x7f]
    for (let value = arc >>> 7; value > 0; value >>>= 7) base128.unshift(0x80 | (value & 0x7f))
    out.push(...base128)
  }
  return tlv(0x06, Buffer.from(out))
}

/** A non-negative INTEGER: a leading zero byte keeps the high bit from reading as a sign. */
function unsigned(value: Buffer): Buffer {
  return tlv(0x02, (value[0] ?? 0) >= 0x80 ? Buffer.concat([Buffer.from([0]), value]) : value)
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14)
  return date.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${iso}Z`))
}

const ECDSA_WITH_SHA256 = sequence(oid('1.2.840.10045.4.3.2'))

function name(commonName: string): Buffer {
  return sequence(set(sequence(oid('2.5.4.3'), utf8(commonName))))
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [Buffer.from([0x01, 0x01, 0xff])] : []), octets(value))
}

function tbsCertificate(hostname: string, address: string, publicKey: KeyObject, now: Date): Buffer {
  const serial = randomBytes(16)
  serial[0] = (serial[0]! & 0x7f) | 0x01
  const altNames = [tlv(0x82, Buffer.from(hostname, 'ascii'))]
  if (isIPv4(address)) altNames.push(tlv(0x87, Buffer.from(address.split('.').map(Number))))
  const notBefore = new Date(now.getTime() - 60 * 60 * 1000)
  const notAfter = new Date(now.getTime() + 10 * 365 * 24 * 60 * 60 * 1000)
  return sequence(
    explicit(0, tlv(0x02, Buffer.from([2]))),
    unsigned(serial),
    ECDSA_WITH_SHA256,
    name(hostname),
    sequence(time(notBefore), time(notAfter)),
    name(hostname),
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(
      3,
      sequence(
        // CA:TRUE as well: clients that pin a certificate as their CA (qemu's tls-creds-x509) want one
        extension('2.5.29.19', true, sequence(Buffer.from([0x01, 0x01, 0xff]))),
        // digitalSignature (the ECDHE key exchange) and keyCertSign (it signed itself)
        extension('2.5.29.15', true, tlv(0x03, Buffer.from([0x02, 0x84]))),
        extension('2.5.29.37', false, sequence(oid('1.3.6.1.5.5.7.3.1'))),
        extension('2.5.29.17', false, sequence(...altNames)),
      ),
    ),
  )
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? []
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`
}

/** A fresh key and a self-signed certificate for `hostname` at `address`, valid from an hour ago for ten years. */
export function hostCertificate(hostname: string, address: string, now = new Date()): HostCertificate {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const tbs = tbsCertificate(hostname, address, publicKey, now)
  const certificate = sequence(tbs, ECDSA_WITH_SHA256, bits(sign('sha256', tbs, privateKey)))
  return {
    certPem: pem('CERTIFICATE', certificate),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  }
}
