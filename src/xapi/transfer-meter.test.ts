import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import { OperationError } from '../errors.js'
import { TransferMeter, type TransferProgress } from './transfer-meter.js'

function sink(): Writable {
  return new Writable({ write: (_chunk, _enc, cb) => cb() })
}

describe('TransferMeter', () => {
  it('counts every byte and reports the final total', async () => {
    const seen: TransferProgress[] = []
    const meter = new TransferMeter({ what: 't', expected: 3 * 1024 * 1024, onProgress: p => seen.push(p) })
    await pipeline(Readable.from([Buffer.alloc(1024 * 1024), Buffer.alloc(2 * 1024 * 1024)]), meter, sink())
    expect(meter.bytes).toBe(3 * 1024 * 1024)
    expect(seen.at(-1)).toEqual({ bytes: 3 * 1024 * 1024, total: 3 * 1024 * 1024 })
  })

  it('fails a body shorter than announced at its end', async () => {
    const meter = new TransferMeter({ what: 't', expected: 10 })
    await expect(pipeline(Readable.from([Buffer.alloc(9)]), meter, sink())).rejects.toMatchObject({
      code: 'TRANSFER_LENGTH_MISMATCH',
    })
  })

  it('fails a body longer than announced as soon as it overflows', async () => {
    const meter = new TransferMeter({ what: 't', expected: 10 })
    await expect(pipeline(Readable.from([Buffer.alloc(8), Buffer.alloc(8)]), meter, sink())).rejects.toBeInstanceOf(
      OperationError,
    )
  })

  it('refuses an HTTP response embedded in the body, even split across 1-byte chunks', async () => {
    const chunks = [...Buffer.from('HTTP/1.1 500 Internal Error\r\n\r\n')].map(byte => Buffer.from([byte]))
    const meter = new TransferMeter({ what: 't', rejectEmbeddedHttp: true })
    await expect(pipeline(Readable.from(chunks), meter, sink())).rejects.toMatchObject({
      code: 'TRANSFER_NOT_DISK_DATA',
    })
  })
})
