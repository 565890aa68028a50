import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ConfigError } from '../errors.js'
import { makeTempDir } from '../../test/helpers/tmp.js'
import type { PoolConfig } from './types.js'
import { resolvePassword } from './resolve-password.js'

let tmp: { path: string; remove: () => Promise<void> }
beforeEach(async () => {
  tmp = await makeTempDir()
})
afterEach(async () => {
  await tmp.remove()
})

function pool(password: PoolConfig['password']): PoolConfig {
  return { name: 'lab', url: 'http://127.0.0.1:1', user: 'root', password, allowUnauthorized: false, fingerprints: [] }
}

async function refusal(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  )
  expect(error).toBeInstanceOf(ConfigError)
  return error as ConfigError
}

describe('resolvePassword', () => {
  it('reads a password file without its final newline and warns when others can read it', async () => {
    const file = join(tmp.path, 'lab.password')
    await writeFile(file, 'pa ss\n', { mode: 0o600 })
    const warnings: string[] = []
    expect(await resolvePassword(pool({ kind: 'file', path: file }), { warn: code => warnings.push(code) })).toBe(
      'pa ss',
    )
    expect(warnings).toEqual([])
    await chmod(file, 0o644)
    expect(await resolvePassword(pool({ kind: 'file', path: file }), { warn: code => warnings.push(code) })).toBe(
      'pa ss',
    )
    expect(warnings).toEqual(['PASSWORD_FILE_MODE'])
  })

  it('names the file and key when the file is missing or empty, never a password', async () => {
    const missing = await refusal(resolvePassword(pool({ kind: 'file', path: join(tmp.path, 'nope') })))
    expect(missing.code).toBe('PASSWORD_FILE_UNREADABLE')
    expect(missing.message).toContain(join(tmp.path, 'nope'))
    expect(missing.key).toBe('pools.lab.passwordFile')
    const file = join(tmp.path, 'empty')
    await writeFile(file, '\n', { mode: 0o600 })
    expect((await refusal(resolvePassword(pool({ kind: 'file', path: file })))).code).toBe('PASSWORD_EMPTY')
  })

  it('asks the prompt when there is no source, and fails naming the key when nobody can answer', async () => {
    const questions: string[] = []
    const prompt = async (question: string) => {
      questions.push(question)
      return 'typed'
    }
    expect(await resolvePassword(pool({ kind: 'prompt' }), { prompt })).toBe('typed')
    expect(questions).toEqual(['Password for root on pool "lab" (http://127.0.0.1:1): '])
    const unattended = await refusal(resolvePassword(pool({ kind: 'prompt' })))
    expect(unattended.code).toBe('PASSWORD_MISSING')
    expect(unattended.key).toBe('pools.lab.passwordFile')
  })

  it('reads the environment it is given', async () => {
    expect(await resolvePassword(pool({ kind: 'env', variable: 'LAB_PW' }), { env: { LAB_PW: 'x' } })).toBe('x')
    const unset = await refusal(resolvePassword(pool({ kind: 'env', variable: 'LAB_PW' }), { env: {} }))
    expect(unset.code).toBe('PASSWORD_ENV_UNSET')
    expect(unset.message).toContain('LAB_PW')
  })
})
