import { createCipheriv, createHash } from 'node:crypto'
import { BLOCK_SIZE } from './types.js'

const ZEROS = Buffer.alloc(BLOCK_SIZE)

/**
 * One block of deterministic pseudo-random guest data: the same `(seed, index)` always gives the
 * same bytes, different blocks differ. AES-CTR over zeros keeps it native-speed (a 2 MiB block
 * in a few milliseconds), which matters when a lab spec fills gigabytes.
 */
export function guestBlock(seed: number, index: number): Buffer {
  const key = createHash('sha256').update(`xen-cr-lab:${seed}:${index}`).digest()
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32))
  const out = cipher.update(ZEROS)
  cipher.final()
  return out
}
