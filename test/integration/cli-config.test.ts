/**
 * `xen-cr config show | check` in-process against a real lab: the lab's config loads as is,
 * passwords never appear, and a pool that refuses the login gives exit 4.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { run } from '../../src/cli/program.js'
import { startLab, type Lab } from '../../src/lab/start.js'
import { CaptureStream } from '../helpers/capture-stream.js'
import { makeTempDir } from '../helpers/tmp.js'

let labDir: { path: string; remove: () => Promise<void> }
let lab: Lab
beforeAll(async () => {
  labDir = await makeTempDir('xen-cr-cli-config-lab-')
  lab = await startLab({
    spec: {
      pools: [
        { name: 'a', srs: [{ name: 'sr' }] },
        { name: 'b', srs: [{ name: 'sr' }] },
      ],
    },
    dir: labDir.path,
  })
})
afterAll(async () => {
  await lab.stop()
  await labDir.remove()
})

let tmp: { path: string; remove: () => Promise<void> }
beforeEach(async () => {
  tmp = await makeTempDir()
})
afterEach(async () => {
  await tmp.remove()
})

async function cli(args: string[]) {
  const stdout = new CaptureStream()
  const stderr = new CaptureStream()
  const code = await run(args, {
    stdout,
    stderr,
    env: { HOME: tmp.path, XDG_CONFIG_HOME: join(tmp.path, 'xdg') },
    cwd: tmp.path,
  })
  return { code, stdout, stderr }
}

describe('xen-cr config', () => {
  it('shows where the config is and how each password is found, never the password', async () => {
    const { code, stdout } = await cli(['--config', lab.configPath, 'config', 'show'])
    expect(code).toBe(0)
    expect(stdout.lines[0]).toBe(`config file: ${lab.configPath}`)
    expect(stdout.text).toContain(
      `pool a: ${lab.pools[0]!.url} user root, password from file ${join(labDir.path, 'a.password')}`,
    )
    expect(stdout.text).toContain(`job store: ${join(labDir.path, 'jobs.json')}`)
    for (const pool of lab.pools) expect(stdout.text).not.toContain(pool.password)
    const json = await cli(['--config', lab.configPath, '--json', 'config', 'show'])
    expect(JSON.parse(json.stdout.lines[0]!)).toMatchObject({
      kind: 'config-show',
      file: lab.configPath,
      pools: [{ name: 'a' }, { name: 'b' }],
    })
  })

  it('logs in to every pool of the lab config', async () => {
    const { code, stdout } = await cli(['--config', lab.configPath, 'config', 'check'])
    expect(code).toBe(0)
    expect(stdout.lines).toEqual([
      `ok pool a: logged in to ${lab.pools[0]!.url}`,
      `ok pool b: logged in to ${lab.pools[1]!.url}`,
    ])
  })

  it('exits 4 naming the pool that refuses the login, 2 for an unknown pool', async () => {
    const config = JSON.parse(await readFile(lab.configPath, 'utf8')) as {
      pools: Record<string, { passwordFile: string }>
    }
    config.pools['a']!.passwordFile = join(labDir.path, 'a.password')
    config.pools['b']!.passwordFile = join(tmp.path, 'wrong.password')
    await writeFile(join(tmp.path, 'wrong.password'), 'wrong', { mode: 0o600 })
    await writeFile(join(tmp.path, 'xen-cr.config.json'), JSON.stringify(config))
    const { code, stdout, stderr } = await cli(['config', 'check'])
    expect(code).toBe(4)
    // not a terminal: ASCII words instead of ✓ and ✗; a failure is a diagnostic, on stderr
    expect(stdout.lines[0]).toMatch(/^ok pool a/)
    expect(stderr.lines[0]).toMatch(/FAILED pool b: .*\[POOL_AUTH_FAILED\]$/)
    const unknown = await cli(['config', 'check', 'a', 'zzz'])
    expect(unknown.code).toBe(2)
    expect(unknown.stdout.text).toBe('')
    expect(unknown.stderr.text).toContain('[POOL_NOT_CONFIGURED]')
  })
})
