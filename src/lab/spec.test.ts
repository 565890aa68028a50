/** The lab spec: sizes with binary units, the shipped example and the default are valid, mistakes are named. */
import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { LabSetupError } from './lab-error.js'
import { DEFAULT_SPEC, parseSize, validateSpec } from './spec.js'

describe('lab spec', () => {
  it('parses sizes in bytes and binary units', () => {
    expect(parseSize(512, 'x')).toBe(512)
    expect(parseSize('2 TiB', 'x')).toBe(2 * 1024 ** 4)
    expect(parseSize('64MiB', 'x')).toBe(64 * 1024 ** 2)
    expect(parseSize('1.5 GiB', 'x')).toBe(1.5 * 1024 ** 3)
    expect(() => parseSize('lots', 'VM a disk size')).toThrow(/VM a disk size: "lots" is not a size/)
    expect(() => parseSize(-1, 'x')).toThrow(LabSetupError)
  })

  it('accepts examples/lab.json and the default spec', async () => {
    const example = JSON.parse(await readFile(new URL('../../examples/lab.json', import.meta.url), 'utf8')) as unknown
    expect(validateSpec(example).pools.map(p => p.name)).toEqual(['source', 'target'])
    expect(validateSpec(DEFAULT_SPEC)).toBe(DEFAULT_SPEC)
  })

  it('names the first problem', () => {
    const bad = (spec: unknown): string => {
      try {
        validateSpec(spec, 'f.json')
      } catch (error) {
        expect(error).toBeInstanceOf(LabSetupError)
        expect((error as LabSetupError).code).toBe('LAB_SPEC_INVALID')
        return (error as Error).message
      }
      throw new Error('expected a failure')
    }
    expect(bad({})).toBe('lab spec f.json: needs a "pools" array')
    expect(bad({ pools: [{ name: 'a b' }] })).toMatch(/pool name "a b"/)
    expect(bad({ pools: [{ name: 'a' }, { name: 'a' }] })).toMatch(/pool a appears twice/)
    expect(bad({ pools: [{ name: 'a', vms: [{ name: 'v', disks: [{ size: '1 MiB' }] }] }] })).toMatch(
      /VM v has disks but the pool has no SR/,
    )
    expect(
      bad({
        pools: [{ name: 'a', srs: [{ name: 's' }], vms: [{ name: 'v', disks: [{ size: '1 MiB', filled: '2 MiB' }] }] }],
      }),
    ).toMatch(/filled beyond its size/)
    expect(bad({ pools: [{ name: 'a', vms: [{ name: 'v', networks: ['nope'] }] }] })).toMatch(/unknown network nope/)
    expect(bad({ pools: [{ name: 'a', hosts: ['h', 'h'] }] })).toMatch(/distinct names/)
    expect(bad({ pools: [{ name: 'a', faults: [{ kind: 'error' }] }] })).toMatch(
      /pool a: an error fault needs method and code/,
    )
  })

  it('checks guest settings and network purposes', () => {
    const bad = (spec: unknown): string => {
      try {
        validateSpec(spec)
      } catch (error) {
        expect((error as LabSetupError).code).toBe('LAB_SPEC_INVALID')
        return (error as Error).message
      }
      throw new Error('expected a failure')
    }
    const vm = (guest: unknown): unknown => ({ pools: [{ name: 'a', vms: [{ name: 'v', guest }] }] })
    expect(
      validateSpec(vm({ tools: 'never', healthCheck: { result: 'failure', error: 'e', delayMs: 5 } })),
    ).toBeDefined()
    expect(bad(vm({ tools: -1 }))).toMatch(/VM v: guest tools must be a delay in ms or "never", not -1/)
    expect(bad(vm({ tools: 10, later: true }))).toMatch(/unknown key "later"/)
    expect(bad(vm({ healthCheck: { result: 'maybe' } }))).toMatch(/result must be "success" or "failure"/)
    expect(bad(vm({ healthCheck: { result: 'failure', error: 3 } }))).toMatch(/error must be a string/)
    expect(bad({ pools: [{ name: 'a' }], guest: { tools: '1s' } })).toMatch(/guest tools must be a delay/)
    const networks = (...purposes: unknown[]): unknown => ({
      pools: [{ name: 'a', networks: purposes.map((purpose, i) => ({ name: `n${i}`, purpose })) }],
    })
    expect(validateSpec(networks(['nbd'], []))).toBeDefined()
    expect(bad(networks(['nbd'], ['insecure_nbd']))).toMatch(/cannot mix the nbd and insecure_nbd purposes/)
    expect(bad(networks(['fast']))).toMatch(/network n0: unknown purpose "fast"/)
    expect(bad(networks('nbd'))).toMatch(/purpose must be a list/)
  })
})
