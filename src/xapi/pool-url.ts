/**
 * Pool URLs: what the user wrote (`https://host`, `host:port`, `http://root:pw@127.0.0.2:8080`)
 * reduced to an origin without credentials, and the coordinator's URL from the address a pool
 * member names in `HOST_IS_SLAVE`.
 */
import { ConfigError } from '../errors.js'

export interface ParsedPoolUrl {
  /** `protocol//host[:port]`, never credentials, path or query */
  readonly origin: URL
  /** credentials found in the URL (removed from `origin`) */
  readonly user?: string
  readonly password?: string
}

/**
 * Parses a pool URL. A missing scheme means `https:` (as XAPI listens there); credentials in
 * the URL are taken out and returned separately so they never travel further with the URL.
 */
export function parsePoolUrl(input: string): ParsedPoolUrl {
  const text = input.trim()
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    throw new ConfigError(
      'POOL_URL_INVALID',
      `pool URL "${describeForError(text)}" is not a valid URL; write it as https://host[:port]`,
      { key: 'url' },
    )
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError('POOL_URL_INVALID', `pool URL ${url.protocol}//${url.host} must use http: or https:`, {
      key: 'url',
    })
  }
  const user = url.username === '' ? undefined : decodeURIComponent(url.username)
  const password = url.password === '' ? undefined : decodeURIComponent(url.password)
  const origin = new URL(`${url.protocol}//${url.host}`)
  return { origin, ...(user === undefined ? {} : { user }), ...(password === undefined ? {} : { password }) }
}

/** The URL text with any `user:password@` part removed, for messages about an unparsable URL. */
function describeForError(text: string): string {
  return text.replace(/\/\/[^/@]*@/, '//').replace(/^[^/@]*@/, '')
}

/**
 * The coordinator's URL from the address a member sends in `HOST_IS_SLAVE [address]`. Real
 * hosts send a bare IP and listen on the same port as the member; an `address:port` or a full
 * URL (as a simulator on loopback may send) is honoured too. The scheme is kept unless given.
 */
export function resolveMasterUrl(current: URL, address: string): URL {
  const text = address.trim()
  if (/^https?:\/\//i.test(text)) {
    const url = new URL(text)
    return new URL(`${url.protocol}//${url.host}`)
  }
  const hasPort = /^\[[^\]]+\]:\d+$/.test(text) || /^[^:[\]]+:\d+$/.test(text)
  if (hasPort) {
    return new URL(`${current.protocol}//${text}`)
  }
  const host = text.includes(':') && !text.startsWith('[') ? `[${text}]` : text
  return new URL(`${current.protocol}//${host}${current.port === '' ? '' : `:${current.port}`}`)
}

/** How a pool URL appears in messages: the origin, never credentials. */
export function displayUrl(url: URL): string {
  return `${url.protocol}//${url.host}`
}
