/**
 * XXH64 (seed 0 by default), the checksum current XAPI writes beside every XVA chunk as
 * `<chunk>.xxhash`: 16 uppercase hex digits (`Printf "%016LX"`). 64-bit arithmetic is done on
 * pairs of uint32 halves: BigInt would cost ~20× more per 1 MiB chunk, and we add no dependency.
 */

const TWO32 = 0x1_0000_0000

/** A 64-bit lane: high and low unsigned 32-bit halves. */
interface U64 {
  hi: number
  lo: number
}

const P1: U64 = { hi: 0x9e3779b1, lo: 0x85ebca87 }
const P2: U64 = { hi: 0xc2b2ae3d, lo: 0x27d4eb4f }
const P3: U64 = { hi: 0x165667b1, lo: 0x9e3779f9 }
const P4: U64 = { hi: 0x85ebca77, lo: 0xc2b2ae63 }
const P5: U64 = { hi: 0x27d4eb2f, lo: 0x165667c5 }

function add(a: U64, b: U64): U64 {
  const lo = a.lo + b.lo
  return { hi: (a.hi + b.hi + (lo >= TWO32 ? 1 : 0)) >>> 0, lo: lo >>> 0 }
}

function sub(a: U64, b: U64): U64 {
  const lo = a.lo - b.lo
  return { hi: (a.hi - b.hi - (lo < 0 ? 1 : 0)) >>> 0, lo: lo >>> 0 }
}

/** a × b mod 2^64: the low halves multiplied exactly in 16-bit pieces, the cross terms mod 2^32. */
function mul(a: U64, b: U64): U64 {
  const a0 = a.lo & 0xffff
  const a1 = a.lo >>> 16
  const b0 = b.lo & 0xffff
  const b1 = b.lo >>> 16
  const mid = a0 * b1 + a1 * b0
  const low = a0 * b0 + (mid % 0x10000) * 0x10000
  const carry = Math.floor(low / TWO32)
  const hi = a1 * b1 + Math.floor(mid / 0x10000) + carry + Math.imul(a.hi, b.lo) + Math.imul(a.lo, b.hi)
  return { hi: hi >>> 0, lo: low >>> 0 }
}

function xor(a: U64, b: U64): U64 {
  return { hi: (a.hi ^ b.hi) >>> 0, lo: (a.lo ^ b.lo) >>> 0 }
}

function rotl(a: U64, r: number): U64 {
  const { hi, lo } = r >= 32 ? { hi: a.lo, lo: a.hi } : a
  const n = r % 32
  if (n === 0) return { hi, lo }
  return { hi: ((hi << n) | (lo >>> (32 - n))) >>> 0, lo: ((lo << n) | (hi >>> (32 - n))) >>> 0 }
}

/** a >> n for 0 < n < 64 (logical). */
function shr(a: U64, n: number): U64 {
  if (n >= 32) return { hi: 0, lo: a.hi >>> (n - 32) }
  return { hi: a.hi >>> n, lo: ((a.lo >>> n) | (a.hi << (32 - n))) >>> 0 }
}

function read64(data: Uint8Array, at: number): U64 {
  const lo = ((data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16)) >>> 0) + data[at + 3]! * 0x1000000
  const hi = ((data[at + 4]! | (data[at + 5]! << 8) | (data[at + 6]! << 16)) >>> 0) + data[at + 7]! * 0x1000000
  return { hi, lo }
}

function round(acc: U64, input: U64): U64 {
  return mul(rotl(add(acc, mul(input, P2)), 31), P1)
}

function mergeRound(acc: U64, value: U64): U64 {
  return add(mul(xor(acc, round({ hi: 0, lo: 0 }, value)), P1), P4)
}

/**
 * `round(acc, read64(data, at))` written into `acc` without allocating: the stripe loop runs
 * 32768 times per 1 MiB chunk, and objects per step made it several times slower.
 */
function roundInPlace(acc: U64, data: Uint8Array, at: number): void {
  const inLo = ((data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16)) >>> 0) + data[at + 3]! * 0x1000000
  const inHi = ((data[at + 4]! | (data[at + 5]! << 8) | (data[at + 6]! << 16)) >>> 0) + data[at + 7]! * 0x1000000
  // input × P2
  let a0 = inLo & 0xffff
  let a1 = inLo >>> 16
  let b0 = P2.lo & 0xffff
  let b1 = P2.lo >>> 16
  let mid = a0 * b1 + a1 * b0
  let low = a0 * b0 + (mid % 0x10000) * 0x10000
  let hi = a1 * b1 + Math.floor(mid / 0x10000) + Math.floor(low / TWO32) + Math.imul(inHi, P2.lo) + Math.imul(inLo, P2.hi)
  // acc + that
  let lo = acc.lo + (low >>> 0)
  hi = (acc.hi + (hi >>> 0) + (lo >= TWO32 ? 1 : 0)) >>> 0
  lo = lo >>> 0
  // rotl 31
  const rHi = ((hi << 31) | (lo >>> 1)) >>> 0
  const rLo = ((lo << 31) | (hi >>> 1)) >>> 0
  // × P1
  a0 = rLo & 0xffff
  a1 = rLo >>> 16
  b0 = P1.lo & 0xffff
  b1 = P1.lo >>> 16
  mid = a0 * b1 + a1 * b0
  low = a0 * b0 + (mid % 0x10000) * 0x10000
  hi = a1 * b1 + Math.floor(mid / 0x10000) + Math.floor(low / TWO32) + Math.imul(rHi, P1.lo) + Math.imul(rLo, P1.hi)
  acc.hi = hi >>> 0
  acc.lo = low >>> 0
}

/** XXH64 of `data` as two uint32 halves. */
function xxh64Parts(data: Uint8Array, seed: U64): U64 {
  const length = data.length
  let at = 0
  let h: U64
  if (length >= 32) {
    const v1 = add(add(seed, P1), P2)
    const v2 = add(seed, P2)
    const v3 = { ...seed }
    const v4 = sub(seed, P1)
    const limit = length - 32
    while (at <= limit) {
      roundInPlace(v1, data, at)
      roundInPlace(v2, data, at + 8)
      roundInPlace(v3, data, at + 16)
      roundInPlace(v4, data, at + 24)
      at += 32
    }
    h = add(add(rotl(v1, 1), rotl(v2, 7)), add(rotl(v3, 12), rotl(v4, 18)))
    h = mergeRound(h, v1)
    h = mergeRound(h, v2)
    h = mergeRound(h, v3)
    h = mergeRound(h, v4)
  } else {
    h = add(seed, P5)
  }
  h = add(h, { hi: Math.floor(length / TWO32) >>> 0, lo: length >>> 0 })
  while (at + 8 <= length) {
    h = xor(h, round({ hi: 0, lo: 0 }, read64(data, at)))
    h = add(mul(rotl(h, 27), P1), P4)
    at += 8
  }
  if (at + 4 <= length) {
    const word = ((data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16)) >>> 0) + data[at + 3]! * 0x1000000
    h = xor(h, mul({ hi: 0, lo: word }, P1))
    h = add(mul(rotl(h, 23), P2), P3)
    at += 4
  }
  while (at < length) {
    h = xor(h, mul({ hi: 0, lo: data[at]! }, P5))
    h = mul(rotl(h, 11), P1)
    at++
  }
  h = xor(h, shr(h, 33))
  h = mul(h, P2)
  h = xor(h, shr(h, 29))
  h = mul(h, P3)
  h = xor(h, shr(h, 32))
  return h
}

/**
 * XXH64 of `data` with `seed` (default 0) as XAPI prints it in `.xxhash` members: 16 uppercase
 * hex digits.
 */
export function xxh64Hex(data: Uint8Array, seed = 0n): string {
  const s: U64 = { hi: Number((seed >> 32n) & 0xffffffffn), lo: Number(seed & 0xffffffffn) }
  const h = xxh64Parts(data, s)
  return (h.hi.toString(16).padStart(8, '0') + h.lo.toString(16).padStart(8, '0')).toUpperCase()
}
