import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ConfigError } from '../errors.js'
import { makeTempDir } from '../../test/helpers/tmp.js'
import { loadConfig } from './load-config.js'

let tmp: { path: string; remove: () => Promise<void> }
beforeEach(async () => {
  tmp = await makeTempDir()
})
afterEach(async () => {
  await tmp.remove()
})

const labConfig = {
  pools: {
    src: { url: 'http://127.0.0.2:40001', user: 'root', passwordFile: 'src.password', allowUnauthorized: false },
    tgt: { url: 'http://127.0.0.3:40002', user: 'root', passwordFile: 'tgt.password', allowUnauthorized: false },
  },
  defaults: { jobsFile: 'jobs.json' },
}

async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  )
  expect(error).toBeInstanceOf(ConfigError)
  return error as ConfigError
}

describe('loadConfig', () => {
  it('loads the config the lab writes as is, resolving relative paths against its folder', async () => {
    const dir = join(tmp.path, 'lab')
    await mkdir(dir)
    await writeFile(join(dir, 'xen-cr.config.json'), JSON.stringify(labConfig))
    const config = await loadConfig({ file: join(dir, 'xen-cr.config.json'), env: {}, cwd: tmp.path })
    expect(config.file).toBe(join(dir, 'xen-cr.config.json'))
    expect(config.pools['src']).toEqual({
      name: 'src',
      url: 'http://127.0.0.2:40001',
      user: 'root',
      password: { kind: 'file', path: join(dir, 'src.password') },
      allowUnauthorized: false,
      fingerprints: [],
    })
    expect(config.defaults).toEqual({ jobsFile: join(dir, 'jobs.json'), retention: 1, concurrency: 2, fullInterval: 0 })
  })

  it('finds xen-cr.config.json in a parent of the working directory', async () => {
    await writeFile(join(tmp.path, 'xen-cr.config.json'), JSON.stringify(labConfig))
    const deep = join(tmp.path, 'a', 'b')
    await mkdir(deep, { recursive: true })
    const config = await loadConfig({ cwd: deep, stopDir: tmp.path, env: { XDG_CONFIG_HOME: join(tmp.path, 'xdg') } })
    expect(config.file).toBe(join(tmp.path, 'xen-cr.config.json'))
  })

  it('reads package.json#xen-cr and .xen-crrc (YAML)', async () => {
    await writeFile(
      join(tmp.path, 'package.json'),
      JSON.stringify({ name: 'x', 'xen-cr': { defaults: { retention: 4 } } }),
    )
    const fromPackage = await loadConfig({ cwd: tmp.path, stopDir: tmp.path, env: {} })
    expect(fromPackage.defaults.retention).toBe(4)
    const rc = join(tmp.path, 'rc')
    await mkdir(rc)
    await writeFile(join(rc, '.xen-crrc'), 'defaults:\n  concurrency: 5\n')
    const fromRc = await loadConfig({ cwd: rc, stopDir: rc, env: {} })
    expect(fromRc.defaults.concurrency).toBe(5)
  })

  it('falls back to $XDG_CONFIG_HOME/xen-cr/config.json, and defaults the job store there', async () => {
    const xdg = join(tmp.path, 'xdg')
    await mkdir(join(xdg, 'xen-cr'), { recursive: true })
    await writeFile(
      join(xdg, 'xen-cr', 'config.json'),
      JSON.stringify({ pools: { p: { url: 'x.example', passwordEnv: 'P_PW' } } }),
    )
    const cwd = join(tmp.path, 'empty')
    await mkdir(cwd)
    const config = await loadConfig({ cwd, stopDir: cwd, env: { XDG_CONFIG_HOME: xdg } })
    expect(config.file).toBe(join(xdg, 'xen-cr', 'config.json'))
    expect(config.pools['p']?.url).toBe('https://x.example')
    expect(config.pools['p']?.user).toBe('root')
    expect(config.defaults.jobsFile).toBe(join(xdg, 'xen-cr', 'jobs.json'))
  })

  it('returns an empty config when nothing is found', async () => {
    const config = await loadConfig({
      cwd: tmp.path,
      stopDir: tmp.path,
      env: { XDG_CONFIG_HOME: join(tmp.path, 'none') },
    })
    expect(config.file).toBeUndefined()
    expect(config.pools).toEqual({})
  })

  it('prefers --config over XEN_CR_CONFIG over the search', async () => {
    await writeFile(join(tmp.path, 'xen-cr.config.json'), JSON.stringify({ defaults: { retention: 2 } }))
    await writeFile(join(tmp.path, 'env.json'), JSON.stringify({ defaults: { retention: 3 } }))
    await writeFile(join(tmp.path, 'flag.json'), JSON.stringify({ defaults: { retention: 4 } }))
    const env = { XEN_CR_CONFIG: join(tmp.path, 'env.json') }
    expect((await loadConfig({ cwd: tmp.path, stopDir: tmp.path, env })).defaults.retention).toBe(3)
    expect((await loadConfig({ cwd: tmp.path, env, file: 'flag.json' })).defaults.retention).toBe(4)
  })

  it('loads examples/xen-cr.config.json without a warning', async () => {
    const warnings: string[] = []
    const file = new URL('../../examples/xen-cr.config.json', import.meta.url).pathname
    const config = await loadConfig({ file, env: {}, cwd: tmp.path, warn: code => warnings.push(code) })
    expect(warnings).toEqual([])
    expect(Object.keys(config.pools)).toEqual(['prod', 'dr'])
    expect(config.pools['dr']?.password).toEqual({ kind: 'env', variable: 'XEN_CR_DR_PASSWORD' })
    expect(config.defaults).toEqual({
      jobsFile: '/var/lib/xen-cr/jobs.json',
      retention: 3,
      concurrency: 2,
      fullInterval: 0,
    })
  })

  it('names a missing explicit file and a file that does not parse', async () => {
    const missing = await configError(loadConfig({ cwd: tmp.path, env: {}, file: 'nope.json' }))
    expect(missing.code).toBe('CONFIG_NOT_FOUND')
    expect(missing.message).toContain(join(tmp.path, 'nope.json'))
    await writeFile(join(tmp.path, 'xen-cr.config.json'), '{ "pools": { broken')
    const broken = await configError(loadConfig({ cwd: tmp.path, stopDir: tmp.path, env: {} }))
    expect(broken.code).toBe('CONFIG_PARSE')
    expect(broken.message).toContain(join(tmp.path, 'xen-cr.config.json'))
    expect(broken.message).not.toContain('\n')
  })

  // A directory was reported as missing ("does not exist; check the path"), which it is not.
  it('says that an explicit path is a directory and names the file to give instead', async () => {
    const error = await configError(loadConfig({ cwd: tmp.path, env: {}, file: '.' }))
    expect(error.code).toBe('CONFIG_UNREADABLE')
    expect(error.message).toBe(
      `config file ${tmp.path} (from --config) is a directory; give the path of the file in it, e.g. ${join(tmp.path, 'xen-cr.config.json')}`,
    )
  })
})
