import { describe, expect, it } from 'vitest'
import { ConfigError } from '../errors.js'
import { parsePoolUrl, resolveMasterUrl } from './pool-url.js'

describe('parsePoolUrl', () => {
  it('takes credentials out of the URL and returns them apart', () => {
    const parsed = parsePoolUrl('http://root:s%40cret@127.0.0.2:8080/some/path?x=1')
    expect(parsed.origin.href).toBe('http://127.0.0.2:8080/')
    expect(parsed.user).toBe('root')
    expect(parsed.password).toBe('s@cret')
    expect(parsed.origin.href).not.toContain('cret')
  })

  it('defaults to https when the scheme is missing, as XAPI listens there', () => {
    expect(parsePoolUrl('xcp1.example.org').origin.href).toBe('https://xcp1.example.org/')
    expect(parsePoolUrl('10.0.0.5:4443').origin.href).toBe('https://10.0.0.5:4443/')
  })

  it('refuses other schemes and garbage without echoing a password', () => {
    expect(() => parsePoolUrl('ftp://host')).toThrow(ConfigError)
    try {
      parsePoolUrl('http://root:hunter2@[bad')
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as Error).message).not.toContain('hunter2')
    }
  })
})

describe('resolveMasterUrl', () => {
  const member = new URL('http://127.0.0.3:9000')
  it('keeps scheme and port for a bare address, as real members send it', () => {
    expect(resolveMasterUrl(member, '127.0.0.2').href).toBe('http://127.0.0.2:9000/')
  })
  it('honours address:port and full URLs', () => {
    expect(resolveMasterUrl(member, '127.0.0.2:9100').href).toBe('http://127.0.0.2:9100/')
    expect(resolveMasterUrl(member, 'https://10.1.1.1').href).toBe('https://10.1.1.1/')
  })
  it('brackets a bare IPv6 address', () => {
    expect(resolveMasterUrl(new URL('https://[::1]:443'), 'fe80::1').href).toBe('https://[fe80::1]/')
  })
})
