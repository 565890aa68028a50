import { describe, expect, it } from 'vitest'
import { ConfigError } from '../errors.js'
import { validateConfig } from './validate-config.js'

const FILE = '/etc/xen-cr/xen-cr.config.json'
const pool = { url: 'https://10.0.0.1', user: 'root', passwordFile: 'p.password' }
const HEX = 'A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F90'
const FP = `sha256:${HEX.match(/../g)!.join(':')}`

function validate(raw: unknown, warnings: string[] = []) {
  return validateConfig(raw, {
    label: FILE,
    file: FILE,
    cwd: '/tmp',
    env: { HOME: '/home/u' },
    warn: (code, message) => warnings.push(`${code} ${message}`),
  })
}

function refusal(raw: unknown): ConfigError {
  try {
    validate(raw)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return error as ConfigError
  }
  throw new Error('expected a ConfigError')
}

describe('validateConfig', () => {
  const cases: [string, unknown, string][] = [
    ['the document is not an object', [], ''],
    ['pools is not an object', { pools: [] }, 'pools'],
    ['a pool name is not shell-safe', { pools: { 'a b': pool } }, 'pools.a b'],
    ['a pool is not an object', { pools: { p: 'x' } }, 'pools.p'],
    ['url is missing', { pools: { p: { ...pool, url: undefined } } }, 'pools.p.url'],
    ['url is not a URL', { pools: { p: { ...pool, url: 'http://[::1' } } }, 'pools.p.url'],
    ['url is not http(s)', { pools: { p: { ...pool, url: 'ftp://host' } } }, 'pools.p.url'],
    ['user is not a string', { pools: { p: { ...pool, user: 7 } } }, 'pools.p.user'],
    ['two password sources', { pools: { p: { ...pool, passwordEnv: 'PW' } } }, 'pools.p.passwordEnv'],
    ['passwordFile is empty', { pools: { p: { ...pool, passwordFile: '' } } }, 'pools.p.passwordFile'],
    [
      'passwordEnv is not a variable name',
      { pools: { p: { url: 'https://h', passwordEnv: 'A-B' } } },
      'pools.p.passwordEnv',
    ],
    ['password is not a string', { pools: { p: { url: 'https://h', password: 123 } } }, 'pools.p.password'],
    [
      'allowUnauthorized is not a boolean',
      { pools: { p: { ...pool, allowUnauthorized: 'yes' } } },
      'pools.p.allowUnauthorized',
    ],
    ['fingerprint is not a fingerprint', { pools: { p: { ...pool, fingerprint: 'AB:CD' } } }, 'pools.p.fingerprint'],
    [
      'a listed fingerprint is SHA-1',
      { pools: { p: { ...pool, fingerprint: [FP, 'SHA1 Fingerprint=' + 'AB:'.repeat(19) + 'AB'] } } },
      'pools.p.fingerprint[1]',
    ],
    [
      'fingerprint pins an http URL',
      { pools: { p: { ...pool, url: 'http://h', fingerprint: FP } } },
      'pools.p.fingerprint',
    ],
    [
      'fingerprint comes with allowUnauthorized',
      { pools: { p: { ...pool, fingerprint: FP, allowUnauthorized: true } } },
      'pools.p.fingerprint',
    ],
    ['defaults is not an object', { defaults: 3 }, 'defaults'],
    ['defaults.jobsFile is not a path', { defaults: { jobsFile: 5 } }, 'defaults.jobsFile'],
    ['defaults.retention is 0', { defaults: { retention: 0 } }, 'defaults.retention'],
    ['defaults.concurrency is fractional', { defaults: { concurrency: 1.5 } }, 'defaults.concurrency'],
    ['defaults.fullInterval is negative', { defaults: { fullInterval: -1 } }, 'defaults.fullInterval'],
    ['timeouts is not an object', { timeouts: 30 }, 'timeouts'],
    ['timeouts.connect is 0', { timeouts: { connect: 0 } }, 'timeouts.connect'],
    ['timeouts.call is a string', { timeouts: { call: '5m' } }, 'timeouts.call'],
    ['timeouts.vm is negative', { timeouts: { vm: -1 } }, 'timeouts.vm'],
  ]
  it.each(cases)('refuses when %s, naming the file and the key', (_label, raw, key) => {
    const error = refusal(raw)
    expect(error.code).toBe('CONFIG_INVALID')
    expect(error.file).toBe(FILE)
    expect(error.key).toBe(key)
    expect(error.message).toContain(FILE)
    expect(error.message).toContain(key === '' ? '(top level)' : `${key}:`)
    expect(error.message).not.toContain('\n')
  })

  it('reads timeouts in seconds, 30 s to log in and 5 min per call by default, no VM or run limit', () => {
    expect(validate({}).timeouts).toEqual({ connectMs: 30_000, callMs: 300_000, vmMs: 0, runMs: 0 })
    expect(validate({ timeouts: { connect: 2.5, call: 60, vm: 3600, run: 7200 } }).timeouts).toEqual({
      connectMs: 2_500,
      callMs: 60_000,
      vmMs: 3_600_000,
      runMs: 7_200_000,
    })
  })

  it('never echoes a literal password or URL credentials', () => {
    const withCredentials = refusal({ pools: { p: { ...pool, url: 'https://root:s3cret@h' } } })
    expect(withCredentials.key).toBe('pools.p.url')
    expect(withCredentials.message).not.toContain('s3cret')
    const warnings: string[] = []
    const config = validate({ pools: { p: { url: 'https://h', password: 's3cret' } } }, warnings)
    expect(config.pools['p']?.password).toEqual({ kind: 'literal', value: 's3cret' })
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain('CONFIG_LITERAL_PASSWORD')
    expect(warnings[0]).toContain('pools.p.password')
    expect(warnings.join('')).not.toContain('s3cret')
  })

  it('warns about unknown keys instead of ignoring them silently', () => {
    const warnings: string[] = []
    validate({ pools: { p: { ...pool, passwrd: 'x' } }, extra: 1 }, warnings)
    expect(warnings.map(w => w.split(' ')[0])).toEqual(['CONFIG_UNKNOWN_KEY', 'CONFIG_UNKNOWN_KEY'])
    expect(warnings.join('\n')).toContain('pools.p.passwrd')
    expect(warnings.join('\n')).toContain(': extra:')
  })

  it('asks for the password at connect time when no source is given', () => {
    expect(validate({ pools: { p: { url: 'https://h' } } }).pools['p']?.password).toEqual({ kind: 'prompt' })
  })

  it('resolves relative paths against the config folder and keeps absolute ones', () => {
    const config = validate({
      pools: { p: { ...pool, passwordFile: '/run/secrets/p' }, q: pool },
      defaults: { jobsFile: 'j/jobs.json' },
    })
    expect(config.pools['p']?.password).toEqual({ kind: 'file', path: '/run/secrets/p' })
    expect(config.pools['q']?.password).toEqual({ kind: 'file', path: '/etc/xen-cr/p.password' })
    expect(config.defaults.jobsFile).toBe('/etc/xen-cr/j/jobs.json')
  })

  it('takes a pinned fingerprint in every form openssl prints it, as one string or a list', () => {
    const colons = HEX.match(/../g)!.join(':')
    for (const form of [
      `sha256 Fingerprint=${colons}`,
      `SHA256 Fingerprint=${colons}`,
      `sha256:${colons.toLowerCase()}`,
      colons,
      HEX.toLowerCase(),
    ]) {
      expect(validate({ pools: { p: { ...pool, fingerprint: form } } }).pools['p']?.fingerprints).toEqual([FP])
    }
    expect(validate({ pools: { p: { ...pool, fingerprint: [FP, FP] } } }).pools['p']?.fingerprints).toEqual([FP, FP])
    expect(validate({ pools: { p: pool } }).pools['p']?.fingerprints).toEqual([])
  })
})
