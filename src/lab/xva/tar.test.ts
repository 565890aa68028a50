import { execFileSync } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { isLabError } from '../lab-error.js'
import { makeTempDir } from '../../../test/helpers/tmp.js'
import { TAR_END, TarReader, tarHeader, tarPadding } from './tar.js'

function archive(members: readonly [string, Buffer][]): Buffer {
  return Buffer.concat([
    ...members.flatMap(([name, body]) => [tarHeader(name, body.length), body, tarPadding(body.length)]),
    TAR_END,
  ])
}

async function* pieces(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size)
}

const MEMBERS: [string, Buffer][] = [
  ['ova.xml', Buffer.from('<value>x</value>')],
  ['Ref:3/00000000', Buffer.alloc(1000, 7)],
  ['Ref:3/00000000.xxhash', Buffer.from('0123456789ABCDEF')],
  ['empty', Buffer.alloc(0)],
]

let dir: { path: string; remove: () => Promise<void> }
beforeEach(async () => {
  dir = await makeTempDir()
})
afterEach(async () => {
  await dir.remove()
})

describe('tar writer', () => {
  it('writes what GNU tar lists and extracts byte for byte', async () => {
    const file = join(dir.path, 'a.tar')
    await writeFile(file, archive(MEMBERS))
    const listing = execFileSync('tar', ['-tvf', file], { encoding: 'utf8' }).trim().split('\n')
    expect(listing.map(line => line.split(/\s+/).slice(2, 3)[0])).toEqual(['16', '1000', '16', '0'])
    expect(listing.map(line => line.split(/\s+/).at(-1))).toEqual(MEMBERS.map(([name]) => name))
    expect(listing.every(line => line.startsWith('-r--------'))).toBe(true)
    execFileSync('tar', ['-xf', file, '-C', dir.path])
    for (const [name, body] of MEMBERS) expect(await readFile(join(dir.path, name))).toEqual(body)
  })

  it('refuses a name longer than a ustar header holds', () => {
    expect(() => tarHeader('x'.repeat(101), 0)).toThrow(RangeError)
  })
})

describe('TarReader', () => {
  it('reads every member in order, however the stream is chunked', async () => {
    const data = archive(MEMBERS)
    for (const size of [1, 511, 512, 513, 100_000]) {
      const reader = new TarReader(pieces(data, size))
      const seen: [string, Buffer][] = []
      for (let entry = await reader.next(); entry !== undefined; entry = await reader.next())
        seen.push([entry.name, await reader.body(1 << 20)])
      expect(seen).toEqual(MEMBERS)
    }
  })

  it('skips a body it was not asked to read', async () => {
    const reader = new TarReader(pieces(archive(MEMBERS), 300))
    expect((await reader.next())?.name).toBe('ova.xml')
    expect((await reader.next())?.name).toBe('Ref:3/00000000')
    expect((await reader.next())?.size).toBe(16)
  })

  it('reads a tar made by GNU tar (prefix-free ustar, its own padding)', async () => {
    await writeFile(join(dir.path, 'ova.xml'), 'hello')
    const file = join(dir.path, 'g.tar')
    execFileSync('tar', ['--format=ustar', '-cf', file, '-C', dir.path, 'ova.xml'])
    const reader = new TarReader(pieces(await readFile(file), 4096))
    const entry = await reader.next()
    expect(entry?.name).toBe('ova.xml')
    expect((await reader.body(100)).toString()).toBe('hello')
    expect(await reader.next()).toBeUndefined()
  })

  it('reports truncation at every structural boundary as XVA_TRUNCATED', async () => {
    const data = archive(MEMBERS)
    for (const cut of [0, 100, 512, 520, 1024, 1536 + 999, 2048]) {
      const reader = new TarReader(pieces(data.subarray(0, cut), 64))
      const error = await (async () => {
        for (;;) {
          const entry = await reader.next()
          if (entry === undefined) return undefined
          await reader.body(1 << 20)
        }
      })().catch((e: unknown) => e)
      expect(isLabError(error) && error.code, `cut at ${cut}`).toBe('XVA_TRUNCATED')
    }
  })

  it('refuses a header whose checksum does not match', async () => {
    const data = archive(MEMBERS)
    data[10] = 0x41
    const error = await new TarReader(pieces(data, 512)).next().catch((e: unknown) => e)
    expect(isLabError(error) && error.code).toBe('XVA_BAD_HEADER')
  })

  it('refuses a body larger than the caller allows', async () => {
    const reader = new TarReader(pieces(archive(MEMBERS), 512))
    await reader.next()
    const error = await reader.body(4).catch((e: unknown) => e)
    expect(isLabError(error) && error.code).toBe('XVA_MEMBER_TOO_LARGE')
  })
})
