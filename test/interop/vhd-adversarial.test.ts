/**
 * The streaming reader against real sockets and hostile bodies: a slow consumer, a body cut at
 * every structural boundary, an HTML page where a VHD was expected, a socket reset mid-body.
 * Each must end in a typed error (or the right data), never a hang.
 */
import { randomUUID } from 'node:crypto'
import { createServer, request } from 'node:http'
import type { IncomingMessage, Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { VhdError } from '../../src/errors.js'
import { BLOCK_SIZE } from '../../src/lab/storage/types.js'
import { readVhd } from '../../src/vhd/reader.js'
import { SESSION, startTempDiskServer, type DiskServer } from '../helpers/disk-server.js'
import { httpGet } from '../helpers/http-client.js'

const MiB = 1024 * 1024

let lab: DiskServer

beforeEach(async () => {
  lab = await startTempDiskServer()
})
afterEach(async () => {
  await lab.close()
})

/** The whole VHD export of a disk of the lab's disk server, as sent. */
async function exportedVhd(vdiRef: string): Promise<Buffer> {
  return (
    await httpGet(
      `${lab.url}/export_raw_vdi?${new URLSearchParams({ session_id: SESSION, vdi: vdiRef, format: 'vhd' }).toString()}`,
    )
  ).body
}

function get(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => request(url, resolve).on('error', reject).end())
}

async function readAll(
  source: IncomingMessage,
  perBlock?: () => Promise<void>,
): Promise<{ blocks: Map<number, Buffer> }> {
  const blocks = new Map<number, Buffer>()
  for await (const item of readVhd(source)) {
    if (item.kind !== 'block') continue
    blocks.set(item.index, Buffer.from(item.data))
    if (perBlock !== undefined) await perBlock()
  }
  return { blocks }
}

async function vhdFailure(source: IncomingMessage): Promise<VhdError> {
  try {
    await readAll(source)
  } catch (error) {
    expect(error).toBeInstanceOf(VhdError)
    return error as VhdError
  }
  throw new Error('the reader accepted a broken stream')
}

/** One-shot HTTP server whose handler writes whatever the test wants. */
async function oddServer(
  handle: (res: import('node:http').ServerResponse) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((_req, res) => handle(res))
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    },
  }
}

describe('reading VHD streams off sockets', () => {
  it('gives a slow consumer every block intact, and the export task completes only after it', async () => {
    // 24 MiB: more than loopback socket buffers can hold, so the server must wait for the reader
    const vdi = await lab.addVdi(randomUUID(), 24 * MiB)
    await lab.store.fill(vdi.diskId, { bytes: 24 * MiB, seed: 41 })
    const task = lab.createTask()
    const res = await get(
      `${lab.url}/export_raw_vdi?${new URLSearchParams({ session_id: SESSION, vdi: vdi.ref, format: 'vhd', task_id: task.ref }).toString()}`,
    )
    const statuses: string[] = []
    const { blocks } = await readAll(res, async () => {
      statuses.push(task.status)
      await sleep(20)
    })
    expect([...blocks.keys()]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    for (const [index, data] of blocks) expect(data.equals(await lab.store.readBlock(vdi.diskId, index))).toBe(true)
    // with backpressure the server cannot have finished while the first blocks were consumed
    expect(statuses[0]).toBe('pending')
    expect(await lab.waitForTask(task.ref)).toMatchObject({ status: 'success' })
  })

  it('ends a body cut at each structural boundary with VHD_TRUNCATED, and the task with VDI_IO_ERROR', async () => {
    const vdi = await lab.addVdi(randomUUID(), 6 * MiB)
    await lab.store.fill(vdi.diskId, { bytes: 4 * MiB, seed: 42 })
    const firstBlock = 2048 + 512
    const boundaries = {
      footer: 0,
      inFooter: 100,
      header: 512,
      reserved: 1536,
      bat: 2048,
      bitmap: firstBlock,
      data: firstBlock + 512,
      midData: firstBlock + 512 + MiB,
      secondBlock: firstBlock + 512 + BLOCK_SIZE,
      trailer: firstBlock + 2 * (512 + BLOCK_SIZE),
      inTrailer: firstBlock + 2 * (512 + BLOCK_SIZE) + 511,
    }
    for (const [name, cut] of Object.entries(boundaries)) {
      lab.faults.push({ kind: 'export', fault: { cutAfterBytes: cut } })
      const res = await get(
        `${lab.url}/export_raw_vdi?${new URLSearchParams({ session_id: SESSION, vdi: vdi.ref, format: 'vhd' }).toString()}`,
      )
      const error = await vhdFailure(res)
      expect({ name, code: error.code, offset: error.offset }).toEqual({ name, code: 'VHD_TRUNCATED', offset: cut })
      expect(await lab.waitForTask(res.headers['task-id'] as string)).toMatchObject({
        status: 'failure',
        error: ['VDI_IO_ERROR', 'Device I/O errors'],
      })
    }
  })

  it('names an HTML error page served where a VHD was expected, even dribbled byte by byte', async () => {
    const page = '<!DOCTYPE html><html><head><title>500</title></head><body>Internal error</body></html>'
    const server = await oddServer(res => {
      res.writeHead(200, { 'content-type': 'text/html' })
      let i = 0
      const dribble = (): void => {
        if (i === page.length) return void res.end()
        res.write(page[i++], () => setImmediate(dribble))
      }
      dribble()
    })
    try {
      const error = await vhdFailure(await get(server.url))
      expect(error).toMatchObject({ code: 'VHD_BAD_COOKIE', offset: 0 })
      expect(error.message).toContain('<!DOCTYPE')
    } finally {
      await server.close()
    }
  })

  it('turns a socket reset mid-block into VHD_SOURCE_ERROR with the offset reached', async () => {
    const vdi = await lab.addVdi(randomUUID(), 4 * MiB)
    await lab.store.fill(vdi.diskId, { bytes: 4 * MiB, seed: 43 })
    const full = await exportedVhd(vdi.ref)
    const resetAt = 2048 + 512 + 512 + 1000
    const server = await oddServer(res => {
      res.writeHead(200, { 'content-type': 'application/vhd', 'content-length': String(full.length) })
      res.write(full.subarray(0, resetAt), () => setTimeout(() => res.socket?.resetAndDestroy(), 20))
    })
    try {
      const error = await vhdFailure(await get(server.url))
      expect(error.code).toBe('VHD_SOURCE_ERROR')
      expect(error.offset).toBe(resetAt)
      expect(error.cause).toBeInstanceOf(Error)
    } finally {
      await server.close()
    }
  })

  it('fails on a body longer than its VHD (garbage after the footer) and one shorter than its Content-Length', async () => {
    const vdi = await lab.addVdi(randomUUID(), 2 * MiB)
    await lab.store.write(vdi.diskId, 0, Buffer.alloc(4096, 7))
    const full = await exportedVhd(vdi.ref)
    const longer = await oddServer(res => {
      res.writeHead(200, { 'content-length': String(full.length + 512) })
      res.end(Buffer.concat([full, Buffer.alloc(512, 0x20)]))
    })
    const shorter = await oddServer(res => {
      res.writeHead(200, { 'content-length': String(full.length) })
      res.write(full.subarray(0, full.length - 700), () => res.socket?.end())
    })
    try {
      // the last 512 bytes are not the footer any more
      expect(await vhdFailure(await get(longer.url))).toMatchObject({ code: 'VHD_BAD_COOKIE', offset: full.length })
      const short = await vhdFailure(await get(shorter.url))
      expect(['VHD_SOURCE_ERROR', 'VHD_TRUNCATED']).toContain(short.code)
      expect(short.offset).toBe(full.length - 700)
    } finally {
      await longer.close()
      await shorter.close()
    }
  })
})
