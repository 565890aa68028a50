import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import { CleanupStack } from './cleanup.js'
import { RateLimiter, createRateLimitStream, type Clock } from './rate-limit.js'

/** A clock that only moves when someone sleeps, so waits are computed, never timed. */
function fakeClock(): Clock & { slept: number[] } {
  let t = 0
  const slept: number[] = []
  return {
    slept,
    now: () => t,
    sleep: async ms => {
      slept.push(ms)
      t += ms
    },
  }
}

async function collect(source: Readable, ...transforms: NodeJS.ReadWriteStream[]): Promise<Buffer> {
  const chunks: Buffer[] = []
  await pipeline(source, ...(transforms as []), new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }))
  return Buffer.concat(chunks)
}

describe('CleanupStack', () => {
  it('undoes in reverse order and keeps going past a failing action', async () => {
    const stack = new CleanupStack()
    const ran: string[] = []
    stack.defer('vm', async () => void ran.push('vm'))
    stack.defer('vdi', async () => {
      ran.push('vdi')
      throw new Error('boom')
    })
    stack.defer('vbd', async () => void ran.push('vbd'))
    const failures = await stack.unwind()
    expect(ran).toEqual(['vbd', 'vdi', 'vm'])
    expect(failures.map(f => f.label)).toEqual(['vdi'])
    expect(stack.size).toBe(0)
  })

  it('forgets everything on commit', async () => {
    const stack = new CleanupStack()
    let ran = false
    stack.defer('x', async () => void (ran = true))
    stack.commit()
    await stack.unwind()
    expect(ran).toBe(false)
  })
})

describe('RateLimiter', () => {
  it('makes a sender wait for the bytes beyond the one-second burst', async () => {
    const clock = fakeClock()
    const limiter = new RateLimiter(1000, clock)
    await limiter.take(1000)
    expect(clock.slept).toEqual([])
    await limiter.take(500)
    expect(clock.slept).toEqual([500])
    await limiter.take(2000)
    expect(clock.slept).toEqual([500, 2000])
  })

  it('passes bytes through unchanged while throttling', async () => {
    const clock = fakeClock()
    const data = Buffer.from('x'.repeat(10_000))
    const out = await collect(
      Readable.from([data.subarray(0, 4000), data.subarray(4000)]),
      createRateLimitStream(new RateLimiter(2000, clock)),
    )
    expect(out.equals(data)).toBe(true)
    expect(clock.slept.reduce((a, b) => a + b, 0)).toBe(4000)
  })

  it('rejects a non-positive rate', () => {
    expect(() => new RateLimiter(0)).toThrow(RangeError)
  })
})
