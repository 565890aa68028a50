import { describe, expect, it } from 'vitest'
import type { XapiClient } from '../xapi/client.js'
import { connectJobPools, type CliContext } from './context.js'

/** A context whose logins finish only when the test says so, recording which started. */
function pendingLogins(): {
  context: CliContext
  started: string[]
  finish(pool: string, outcome: XapiClient | Error): void
} {
  const started: string[] = []
  const waiting = new Map<string, { resolve(c: XapiClient): void; reject(e: Error): void }>()
  const context = {
    connect: (pool: string) =>
      new Promise<XapiClient>((resolve, reject) => {
        started.push(pool)
        waiting.set(pool, { resolve, reject })
      }),
  } as unknown as CliContext
  return {
    context,
    started,
    finish: (pool, outcome) => {
      const w = waiting.get(pool)!
      if (outcome instanceof Error) w.reject(outcome)
      else w.resolve(outcome)
    },
  }
}

const client = (name: string): XapiClient => ({ url: name }) as unknown as XapiClient

describe('connectJobPools', () => {
  it('logs in to the source and the target at once (before: the target only after the source)', async () => {
    const logins = pendingLogins()
    const both = connectJobPools(logins.context, { source: 'a', target: 'b' })
    await Promise.resolve()
    expect(logins.started).toEqual(['a', 'b'])
    logins.finish('b', client('b'))
    logins.finish('a', client('a'))
    const { source, target } = await both
    expect([source.url, target.url]).toEqual(['a', 'b'])
  })

  it("reports the source's failure first when both fail, and logs in once within one pool", async () => {
    const logins = pendingLogins()
    const both = connectJobPools(logins.context, { source: 'a', target: 'b' })
    await Promise.resolve()
    logins.finish('b', new Error('b refused'))
    logins.finish('a', new Error('a refused'))
    await expect(both).rejects.toThrow('a refused')

    const one = pendingLogins()
    const same = connectJobPools(one.context, { source: 'a', target: 'a' })
    one.finish('a', client('a'))
    const { source, target } = await same
    expect(source).toBe(target)
    expect(one.started).toEqual(['a'])
  })
})
