import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import { createVhdStream } from '../vhd/writer.js'
import { TransferMeter, type TransferProgress } from './transfer-meter.js'
import { VhdExtentProbe } from './vhd-extent.js'

const BLOCK = 2 * 1024 * 1024

async function vhdBytes(blocks: number[]): Promise<{ length: number; bytes: Buffer }> {
  const { length, stream } = createVhdStream({
    virtualSize: 16 * BLOCK,
    diskType: 'dynamic',
    blocks,
    readBlock: async index => Buffer.alloc(BLOCK, index),
  })
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return { length, bytes: Buffer.concat(chunks) }
}

function sink(): Writable {
  return new Writable({ write: (_chunk, _encoding, callback) => callback() })
}

describe('VhdExtentProbe', () => {
  it('finds the exact length of a vhd-tool layout from its BAT, fed byte by byte', async () => {
    const { length, bytes } = await vhdBytes([1, 5, 6])
    const probe = new VhdExtentProbe()
    for (let offset = 0; offset < 4096; offset++) probe.feed(bytes.subarray(offset, offset + 1))
    expect(probe.minimumLength).toBe(length)
  })

  it('stays silent on something that is not a VHD', () => {
    const probe = new VhdExtentProbe()
    probe.feed(Buffer.from('<html>not a disk</html>'.padEnd(4096, ' ')))
    expect(probe.minimumLength).toBeUndefined()
  })
})

describe('TransferMeter in VHD mode', () => {
  it('reports the VHD length as total and accepts the whole stream', async () => {
    const { length, bytes } = await vhdBytes([0, 3])
    const seen: TransferProgress[] = []
    const meter = new TransferMeter({ what: 'export', vhd: true, onProgress: p => seen.push(p) })
    await pipeline(Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]), meter, sink())
    expect(seen.at(-1)).toEqual({ bytes: length, total: length })
  })

  it('fails a VHD that ends before its last block, as a cut connection does', async () => {
    // Without a Content-Length a cut connection ends the body like a normal end would.
    const { bytes } = await vhdBytes([0, 3])
    const meter = new TransferMeter({ what: 'export', vhd: true })
    await expect(pipeline(Readable.from([bytes.subarray(0, bytes.length - 600)]), meter, sink())).rejects.toMatchObject(
      {
        code: 'TRANSFER_LENGTH_MISMATCH',
      },
    )
  })
})
