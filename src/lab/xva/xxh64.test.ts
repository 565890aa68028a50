import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { xxh64Hex } from './xxh64.js'

/** Deterministic bytes, so a failure names an input that can be reproduced. */
function bytes(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length)
  let block = Buffer.alloc(0)
  for (let i = 0; i < length; i++) {
    if (i % 32 === 0) block = createHash('sha256').update(`${seed}/${i}`).digest()
    out[i] = block[i % 32]!
  }
  return out
}

describe('xxh64Hex', () => {
  // Vectors of the reference implementation (xxHash 0.8, XXH64 with seed 0), as XAPI prints them.
  it.each([
    ['', 'EF46DB3751D8E999'],
    ['a', 'D24EC4F1A98C6E5B'],
    ['abc', '44BC2CF5AD770999'],
    ['Nobody inspects the spammish repetition', 'FBCEA83C8A378BF1'],
    ['The quick brown fox jumps over the lazy dog', '0B242D361FDA71BC'],
  ])('hashes %j to the reference value', (text, expected) => {
    expect(xxh64Hex(Buffer.from(text, 'latin1'))).toBe(expected)
  })

  it('hashes a 1 MiB all-zero chunk (what XAPI writes for the first chunk of an empty disk)', () => {
    expect(xxh64Hex(Buffer.alloc(1024 * 1024))).toBe('87D2A1B6E1163EF1')
  })

  it('uses the seed', () => {
    expect(xxh64Hex(Buffer.from('a'), 1n)).not.toBe(xxh64Hex(Buffer.from('a')))
  })

  // Every length class (tails of 0–31 bytes after 0, 1, 2 stripes) against the system libxxhash,
  // an independent implementation, through python's ctypes.
  it('agrees with libxxhash on every tail length', () => {
    const inputs = Array.from({ length: 100 }, (_, i) => bytes(i, i))
    const script = [
      'import ctypes, sys',
      "l = ctypes.CDLL('libxxhash.so.0')",
      'l.XXH64.restype = ctypes.c_uint64',
      'l.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]',
      'for line in sys.stdin.read().split():',
      '    b = bytes.fromhex(line[1:])',
      "    print('%016X' % l.XXH64(b, len(b), 0))",
    ].join('\n')
    let output: string
    try {
      output = execFileSync('python3', ['-c', script], {
        input: inputs.map(b => `x${b.toString('hex')}`).join('\n'),
        encoding: 'utf8',
      })
    } catch (error) {
      throw new Error(`python3 with libxxhash.so.0 is needed for this check: ${String(error)}`)
    }
    expect(inputs.map(b => xxh64Hex(b))).toEqual(output.trim().split('\n'))
  })
})
