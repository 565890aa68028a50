import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import { writeInBatches } from './write-batching.js'

/** Chunks pushed one per tick, as socket reads arrive: each in a callback of its own within one turn. */
function tickSource(chunks: readonly Buffer[]): Readable {
  let next = 0
  return new Readable({
    read() {
      process.nextTick(() => this.push(next < chunks.length ? chunks[next++] : null))
    },
  })
}

/** Records how many chunks each write call carried; `slow` completes each call a turn later. */
function recordingSink(options: { highWaterMark?: number; slow?: boolean } = {}): Writable & {
  calls: number[]
  received: Buffer[]
} {
  const calls: number[] = []
  const received: Buffer[] = []
  const done = (callback: () => void): void => {
    if (options.slow === true) setImmediate(callback)
    else callback()
  }
  const sink = new Writable({
    highWaterMark: options.highWaterMark ?? 16 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      calls.push(1)
      received.push(chunk)
      done(callback)
    },
    writev(chunks, callback) {
      calls.push(chunks.length)
      for (const { chunk } of chunks) received.push(chunk as Buffer)
      done(callback)
    },
  })
  return Object.assign(sink, { calls, received })
}

const chunks = Array.from({ length: 16 }, (_, i) => Buffer.alloc(1024, i))

describe('writeInBatches', () => {
  it('hands the chunks of one turn to the destination in one writev, in order', async () => {
    // without it every chunk is a write call of its own: 16 calls of 1
    const sink = recordingSink({ highWaterMark: 64 * 1024 })
    const source = tickSource(chunks)
    writeInBatches(source, sink)
    await pipeline(source, sink)
    expect(sink.calls.length).toBeLessThan(4)
    expect(sink.calls.reduce((a, b) => a + b, 0)).toBe(16)
    expect(Buffer.concat(sink.received)).toEqual(Buffer.concat(chunks))
  })

  it('keeps backpressure: a slow destination holding its high-water mark pauses the source', async () => {
    const sink = recordingSink({ highWaterMark: 2048, slow: true })
    const source = tickSource(chunks)
    let mostBuffered = 0
    source.on('data', () => {
      mostBuffered = Math.max(mostBuffered, sink.writableLength)
    })
    writeInBatches(source, sink)
    await pipeline(source, sink)
    // the high-water mark (two chunks) plus the chunk whose write answered false
    expect(mostBuffered).toBeLessThanOrEqual(3 * 1024)
    expect(Buffer.concat(sink.received)).toEqual(Buffer.concat(chunks))
  })

  it('lets an error of the destination fail the pipeline (no write is left corked forever)', async () => {
    const source = tickSource(chunks)
    const sink = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error('disk full'))
      },
      writev(_chunks, callback) {
        callback(new Error('disk full'))
      },
    })
    writeInBatches(source, sink)
    await expect(pipeline(source, sink)).rejects.toThrow('disk full')
  })
})
