import { Readable, type Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { isXapiFault } from '../fault.js'
import { encodeOvaXml } from '../xva/ova-xml.js'
import { XVA_CHUNK_SIZE, xvaStream, type XvaDiskSource } from '../xva/xva-writer.js'
import { BLOCK_SIZE } from '../storage/types.js'
import { TaskCancelled, chunkTaskHooks, failIo, metered, redirect, refuse, withSession } from './disk-transfer.js'
import type { Meter } from './disk-transfer.js'
import type { DataPathFault, LabTaskHandle, XvaHandler, XvaHandlerContext } from './types.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * `GET /export` as XAPI serves it (reference §5.5, `export.ml`): the VM by `ref` or `uuid`,
 * 302 to a host that sees its disks, the pre-checks of an `export` (a running VM is
 * `VM_BAD_POWER_STATE`) and the VM locked for the whole stream; then `200` with `task-id`,
 * `content-type: application/octet-stream` and `Content-Disposition: attachment;
 * filename="export.xva"`, no length, the XVA tar as the body and the task completed with `""`
 * after the last byte. `use_compression=true|gzip` gzips the stream as XAPI does; `zstd` is
 * refused (Node 20 has no zstd) with the task failed, rather than silently sending another
 * format; any other value means no compression, as in XAPI.
 */
export const exportXva: XvaHandler = async (req, res, ctx) => {
  return withSession(req, res, ctx, 'VM.export', async ({ query, openTask }) => {
    const name = query.get('ref') ?? query.get('uuid')
    if (name === null) return refuse(res, 500, openTask(), ['INTERNAL_ERROR', 'Missing parameter ref or uuid'])
    const view = ctx.vmForExport(name)
    if (view === undefined)
      return refuse(
        res,
        404,
        openTask(),
        UUID.test(name) && !query.has('ref') ? ['UUID_INVALID', 'VM', name] : ['HANDLE_INVALID', 'VM', name],
      )
    for (const disk of view.disks) {
      const elsewhere = ctx.redirectFor(disk.vdi)
      if (elsewhere !== undefined) return redirect(res, elsewhere, req)
    }
    const task = openTask()
    if (task === undefined) return refuse(res, 404, undefined, [])
    const compression = query.get('use_compression')
    if (compression === 'zstd')
      return refuse(res, 500, task, [
        'INTERNAL_ERROR',
        'The lab cannot compress with zstd: use use_compression=gzip or none',
      ])
    const gzip = compression === 'true' || compression === 'gzip'

    let unlock: () => void
    try {
      unlock = ctx.lockVm(view.vmRef, 'export', task.ref)
    } catch (error) {
      if (isXapiFault(error)) return refuse(res, 500, task, error.toArray())
      throw error
    }
    try {
      await stream(res, ctx, task, view, gzip)
    } finally {
      unlock()
    }
  })
}

async function stream(
  res: Parameters<XvaHandler>[1],
  ctx: XvaHandlerContext,
  task: LabTaskHandle,
  view: NonNullable<ReturnType<XvaHandlerContext['vmForExport']>>,
  gzip: boolean,
): Promise<void> {
  let fault: DataPathFault | undefined
  for (const disk of view.disks) {
    fault = ctx.takeFault('export', disk.vdi)
    if (fault !== undefined) break
  }
  let sources: XvaDiskSource[]
  try {
    sources = view.disks.map(({ id, vdi }) => {
      const size = ctx.storage.info(vdi.diskId)?.virtualSize ?? vdi.virtualSize
      const perBlock = BLOCK_SIZE / XVA_CHUNK_SIZE
      // only chunks inside allocated 2 MiB blocks can hold data; the rest is never read
      const candidates = ctx.storage
        .allocatedBlocks(vdi.diskId)
        .flatMap(block => Array.from({ length: perBlock }, (_, i) => block * perBlock + i))
      return { id, size, candidates, read: (offset, length) => ctx.storage.read(vdi.diskId, offset, length) }
    })
  } catch {
    // a record names a disk the store does not have: nothing can be sent
    return refuse(res, 500, task, ['VDI_IO_ERROR', 'Device I/O errors'])
  }
  const total = sources.reduce((sum, disk) => sum + disk.size, 0)
  const body = xvaStream(encodeOvaXml(ctx.xvaVersion(), view.objects), sources, chunkTaskHooks(task, total))
  const meter: Meter = { bytes: 0, cut: false }

  // XAPI writes the body raw until it closes the connection: no length, no chunked framing
  res.useChunkedEncodingByDefault = false
  res.writeHead(200, {
    Connection: 'close',
    'task-id': task.ref,
    'content-type': 'application/octet-stream',
    'Content-Disposition': 'attachment; filename="export.xva"',
  })
  res.flushHeaders()
  const source = Readable.from(metered(body, { task, total: 0, fault, meter }), { objectMode: false })
  try {
    if (gzip) await pipeline(source, createGzip() as Transform, res)
    else await pipeline(source, res)
  } catch (error) {
    res.destroy()
    ctx.exported?.('xva', view.vmUuid, meter.bytes)
    if (error instanceof TaskCancelled) task.fail('TASK_CANCELLED', [task.ref])
    else if (isClientGone(error)) task.fail('CLIENT_ERROR', ['the client closed the connection during the export'])
    else failIo(task)
    return
  }
  ctx.exported?.('xva', view.vmUuid, meter.bytes)
  if (meter.cut) failIo(task)
  else if (fault?.failTask !== undefined && fault.failTask.length > 0)
    task.fail(fault.failTask[0] as string, fault.failTask.slice(1))
  else task.succeed('')
}

/** XAPI fails an export whose socket write fails with CLIENT_ERROR. */
function isClientGone(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return (
    code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    code === 'EPIPE' ||
    code === 'ECONNRESET' ||
    code === 'ERR_STREAM_DESTROYED'
  )
}
