import type { ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { BLOCK_SIZE } from '../storage/types.js'
import { toVhdTimestamp } from '../../vhd/timestamp.js'
import { uuidToBytes } from '../../vhd/uuid.js'
import { createVhdStream } from '../../vhd/writer.js'
import { TaskCancelled, failIo, metered, refuse, vdiAndTask, vdiNotFound, withSession } from './disk-transfer.js'
import type { Meter } from './disk-transfer.js'
import type { DiskHandler, DiskHandlerContext, LabVdiView } from './types.js'

const CONTENT_TYPES: Record<string, string> = { raw: 'application/octet-stream', vhd: 'application/vhd' }

/**
 * `GET /export_raw_vdi` as XAPI serves it (reference §5.2): `raw` is the whole virtual disk;
 * `vhd` is a dynamic VHD of every block allocated in the chain, or with `base` a differencing
 * VHD of exactly the blocks allocated in the symmetric difference of the two chains. Headers go
 * out before any data is read and carry no length, so a later failure is a short body plus a
 * failed task; the task completes with `""` after the last byte.
 */
export const exportRawVdi: DiskHandler = async (req, res, ctx) => {
  return withSession(req, res, ctx, 'Exporting raw VDI', async ({ query, openTask }) => {
    const vdiName = query.get('vdi')
    if (vdiName === null) return refuse(res, 500, openTask(), ['INTERNAL_ERROR', 'Missing parameter vdi'])
    const found = vdiAndTask(req, res, ctx, vdiName, openTask)
    if (found === undefined) return
    const { vdi, task } = found
    const format = query.get('format') ?? 'raw'
    if (format !== 'raw' && format !== 'vhd')
      return refuse(res, 404, task, ['INTERNAL_ERROR', `Unknown format ${format}`])
    const baseName = query.get('base')
    const base = baseName === null ? undefined : ctx.lookupVdi(baseName)
    if (baseName !== null && base === undefined) return refuse(res, 404, task, vdiNotFound(baseName))

    let content: { length: number; stream: AsyncIterable<Buffer> }
    try {
      content = format === 'raw' ? rawContent(ctx, vdi, base) : vhdContent(ctx, vdi, base)
    } catch {
      // the record names a disk the store does not have: nothing can be sent
      return refuse(res, 500, task, ['VDI_IO_ERROR', 'Device I/O errors'])
    }
    const fault = ctx.takeFault('export', vdi)
    const meter: Meter = { bytes: 0, cut: false }
    sendHeaders(res, task.ref, format, vdi)
    try {
      await pipeline(
        Readable.from(metered(content.stream, { task, total: content.length, fault, meter }), { objectMode: false }),
        res,
      )
    } catch (error) {
      res.destroy()
      ctx.exported?.('raw', vdi.uuid, meter.bytes)
      if (error instanceof TaskCancelled) task.fail('TASK_CANCELLED', [task.ref])
      else failIo(task)
      return
    }
    ctx.exported?.('raw', vdi.uuid, meter.bytes)
    if (meter.cut) failIo(task)
    else if (fault?.failTask !== undefined && fault.failTask.length > 0)
      task.fail(fault.failTask[0] as string, fault.failTask.slice(1))
    else task.succeed('')
  })
}

function sendHeaders(res: ServerResponse, taskRef: string, format: string, vdi: LabVdiView): void {
  // XAPI writes the body raw until it closes the connection: no length, no chunked framing
  res.useChunkedEncodingByDefault = false
  res.writeHead(200, {
    Connection: 'close',
    'Cache-Control': 'no-cache, no-store',
    'task-id': taskRef,
    'content-type': CONTENT_TYPES[format] as string,
    'content-disposition': `attachment; filename="${vdi.uuid}.${format}"`,
  })
  res.flushHeaders()
}

function sizeOf(ctx: DiskHandlerContext, vdi: LabVdiView): number {
  return ctx.storage.info(vdi.diskId)?.virtualSize ?? vdi.virtualSize
}

/** `virtual_size` bytes; with `base`, blocks outside the difference read as zeros (as XAPI's do). */
function rawContent(
  ctx: DiskHandlerContext,
  vdi: LabVdiView,
  base: LabVdiView | undefined,
): { length: number; stream: AsyncIterable<Buffer> } {
  const size = sizeOf(ctx, vdi)
  const present = new Set(
    base === undefined ? ctx.storage.allocatedBlocks(vdi.diskId) : ctx.storage.changedBlocks(vdi.diskId, base.diskId),
  )
  const zeros = Buffer.alloc(BLOCK_SIZE)
  async function* blocks(): AsyncGenerator<Buffer> {
    for (let index = 0; index * BLOCK_SIZE < size; index++) {
      const block = present.has(index) ? await ctx.storage.readBlock(vdi.diskId, index) : zeros
      yield block.subarray(0, Math.min(BLOCK_SIZE, size - index * BLOCK_SIZE))
    }
  }
  return { length: size, stream: blocks() }
}

function vhdContent(
  ctx: DiskHandlerContext,
  vdi: LabVdiView,
  base: LabVdiView | undefined,
): { length: number; stream: AsyncIterable<Buffer> } {
  const readBlock = (index: number): Promise<Buffer> => ctx.storage.readBlock(vdi.diskId, index)
  const virtualSize = sizeOf(ctx, vdi)
  if (base === undefined) {
    return createVhdStream({
      virtualSize,
      diskType: 'dynamic',
      blocks: ctx.storage.allocatedBlocks(vdi.diskId),
      readBlock,
    })
  }
  // XAPI names the base's storage VHD (its leaf file), not the VDI: we do the same with the
  // base's leaf layer, whose id is a UUID
  const leaf = ctx.storage.info(base.diskId)?.layers.at(-1)
  const parentUuid = leaf !== undefined && /^[0-9a-f-]{36}$/i.test(leaf) ? uuidToBytes(leaf) : Buffer.alloc(16)
  return createVhdStream({
    virtualSize,
    diskType: 'differencing',
    blocks: ctx.storage.changedBlocks(vdi.diskId, base.diskId),
    readBlock,
    parent: {
      uuid: parentUuid,
      name: `/var/run/sr-mount/${base.srRef}/${leaf ?? base.uuid}.vhd`,
      timestamp: toVhdTimestamp(new Date()),
    },
  })
}
