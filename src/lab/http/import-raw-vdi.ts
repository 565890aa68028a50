import { BLOCK_SIZE } from '../storage/types.js'
import type { DiskStore } from '../storage/types.js'
import { isXapiFault } from '../fault.js'
import { SECTOR_SIZE } from '../../vhd/layout.js'
import { ByteReader } from '../../vhd/byte-reader.js'
import { readVhd } from '../../vhd/reader.js'
import { TaskCancelled, failIo, metered, requestBody, refuse, vdiAndTask, withSession } from './disk-transfer.js'
import type { Meter } from './disk-transfer.js'
import type { DiskHandler, LabVdiView } from './types.js'

/**
 * `PUT /import_raw_vdi` as XAPI serves it (reference §5.3): refusals first (unknown format,
 * `chunked` with VHD, HTTP chunked bodies, no VDI), then `200` with `task-id` before a byte of
 * the body is read; the outcome is only in the task. `raw` writes the body from offset 0; `vhd`
 * writes only the sectors whose bitmap bit is set and leaves everything else as it was. A body
 * that ends early (a 1 PiB content-length, a cut) leaves what arrived applied and fails the task
 * with `VDI_IO_ERROR`, as XAPI does. Without Content-Length the body runs to EOF (the host's
 * `EofBodyFront` serves such requests): raw reads up to the VDI size, vhd applies every
 * block and then fails, as XAPI does, looking for the footer at the VDI size.
 */
export const importRawVdi: DiskHandler = async (req, res, ctx) => {
  // taken before the first await: a small body whose sender closes at once must not be lost
  const incoming = requestBody(req)
  return withSession(req, res, ctx, 'Importing raw VDI', async ({ query, openTask }) => {
    const format = query.get('format') ?? 'raw'
    if (format !== 'raw' && format !== 'vhd')
      return refuse(res, 404, openTask(), ['INTERNAL_ERROR', `Unknown format ${format}`])
    if (format !== 'raw' && query.has('chunked'))
      return refuse(res, 404, openTask(), ['INTERNAL_ERROR', 'Cannot handle chunked VHD'])
    if (req.headers['transfer-encoding'] !== undefined)
      return refuse(res, 404, openTask(), ['INTERNAL_ERROR', 'Cannot handle encoding: chunked'])
    const vdiName = query.get('vdi')
    if (vdiName === null) {
      if (!query.has('sr_id') && !query.has('sr_uuid')) return refuse(res, 400, openTask(), ['VDI_MISSING'])
      if (format !== 'raw')
        return refuse(res, 400, openTask(), ['INTERNAL_ERROR', 'Importing a VHD directly into an SR not yet supported'])
      // XAPI would create an "Imported VDI" here; the lab's handler contract cannot create VDIs
      return refuse(res, 400, openTask(), [
        'INTERNAL_ERROR',
        'The lab does not import into a new VDI; create the VDI and pass vdi=',
      ])
    }
    const found = vdiAndTask(req, res, ctx, vdiName, openTask)
    if (found === undefined) return
    const { vdi, task } = found

    // headers first, body afterwards: the client learns the outcome only from the task
    res.useChunkedEncodingByDefault = false
    res.writeHead(200, { Connection: 'close', 'task-id': task.ref, 'content-type': 'application/octet-stream' })
    res.flushHeaders()

    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length'])
    if (declared === 0) {
      // the JS client's redirect probe (and any empty body): XAPI refuses a zero-size
      // destination inside its own task, and nothing is written
      failIo(task)
      res.end()
      return
    }
    const virtualSize = ctx.storage.info(vdi.diskId)?.virtualSize ?? vdi.virtualSize
    const fault = ctx.takeFault('import', vdi)
    const meter: Meter = { bytes: 0, cut: false }
    const total = declared !== undefined && declared <= 2 * virtualSize + BLOCK_SIZE ? declared : virtualSize
    const body = metered(incoming, { task, total, fault, meter })
    let wrote = false
    const written = (): void => {
      wrote = true
    }
    try {
      if (format === 'raw' && query.has('chunked')) await importFramed(ctx.storage, vdi, body, written)
      else if (format === 'raw') await importRaw(ctx.storage, vdi, body, declared ?? virtualSize, virtualSize, written)
      else await importVhd(ctx.storage, vdi, body, written)
      if (meter.cut) throw new Error('cut by a lab fault')
      // Without Content-Length XAPI takes the VDI size for the body's length and looks for the
      // trailing footer in its last 512 bytes, after the blocks are written: unless the body is
      // exactly that long, that read fails (EOF, or a backward seek) and so does the task.
      if (format === 'vhd' && declared === undefined && meter.bytes !== virtualSize)
        throw new RangeError(`no VHD footer at the size of VDI ${vdi.uuid}`)
    } catch (error) {
      if (wrote) ctx.vdiChanged(vdi)
      if (error instanceof TaskCancelled) task.fail('TASK_CANCELLED', [task.ref])
      else if (isXapiFault(error, 'SR_FULL')) task.fail(error.code, [...error.params])
      else failIo(task)
      // stop the sender: the 200 is out already, so all it sees is the connection going away
      req.socket.destroy()
      return
    }
    if (wrote) ctx.vdiChanged(vdi)
    if (fault?.failTask !== undefined && fault.failTask.length > 0)
      task.fail(fault.failTask[0] as string, fault.failTask.slice(1))
    else task.succeed(`<value>${vdi.ref}</value>`)
    res.end()
  })
}

/**
 * Raw: exactly `expected` bytes written from offset 0, zeros included, in block-aligned writes;
 * reading stops there (without Content-Length, `expected` is the VDI size and the body runs to
 * EOF, so XAPI reads that much and no more). Fewer bytes (the body ended) or more than the disk
 * holds is an I/O error after what fitted.
 */
async function importRaw(
  storage: DiskStore,
  vdi: LabVdiView,
  body: AsyncIterable<Buffer>,
  expected: number,
  virtualSize: number,
  written: () => void,
): Promise<void> {
  const pending = Buffer.allocUnsafe(BLOCK_SIZE)
  let held = 0
  let offset = 0
  const flush = async (): Promise<void> => {
    if (held === 0) return
    await storage.write(vdi.diskId, offset, pending.subarray(0, held))
    written()
    offset += held
    held = 0
  }
  for await (const chunk of body) {
    let rest = chunk
    while (rest.length > 0) {
      const room = Math.min(BLOCK_SIZE - held, rest.length, virtualSize - offset - held, expected - offset - held)
      if (room === 0) throw new RangeError(`raw body is larger than VDI ${vdi.uuid} (${virtualSize} bytes)`)
      rest.copy(pending, held, 0, room)
      held += room
      rest = rest.subarray(room)
      if (held === BLOCK_SIZE || offset + held === virtualSize || offset + held === expected) await flush()
      if (offset === expected) return
    }
  }
  await flush()
  if (offset < expected) throw new RangeError(`raw body ended after ${offset} of ${expected} bytes`)
}

/**
 * Raw with the `chunked` query flag: XAPI's own framing (not HTTP chunking), records of a
 * 12-byte header (little-endian u64 offset, u32 length) and that many bytes, ended by a header
 * of zeros. Only the given ranges are written.
 */
async function importFramed(
  storage: DiskStore,
  vdi: LabVdiView,
  body: AsyncIterable<Buffer>,
  written: () => void,
): Promise<void> {
  const input = new ByteReader(body[Symbol.asyncIterator]())
  for (;;) {
    const header = await input.read(12, 'chunk header')
    const offset = Number(header.readBigUInt64LE(0))
    let length = header.readUInt32LE(8)
    if (offset === 0 && length === 0) return
    let position = offset
    while (length > 0) {
      // one block at a time, so a 4 GiB record does not become a 4 GiB buffer
      const piece = await input.read(Math.min(length, BLOCK_SIZE), 'chunk data')
      await storage.write(vdi.diskId, position, piece)
      written()
      position += piece.length
      length -= piece.length
    }
  }
}

/** VHD: for every block, only the sector runs whose bitmap bits are set. */
async function importVhd(
  storage: DiskStore,
  vdi: LabVdiView,
  body: AsyncIterable<Buffer>,
  written: () => void,
): Promise<void> {
  for await (const item of readVhd(body)) {
    if (item.kind !== 'block') continue
    const sectors = item.data.length / SECTOR_SIZE
    const base = item.index * item.data.length
    let sector = 0
    while (sector < sectors) {
      if (!bitSet(item.bitmap, sector)) {
        sector++
        continue
      }
      let end = sector + 1
      while (end < sectors && bitSet(item.bitmap, end)) end++
      await storage.write(
        vdi.diskId,
        base + sector * SECTOR_SIZE,
        item.data.subarray(sector * SECTOR_SIZE, end * SECTOR_SIZE),
      )
      written()
      sector = end
    }
  }
}

function bitSet(bitmap: Buffer, sector: number): boolean {
  return (((bitmap[sector >> 3] as number) >> (7 - (sector & 7))) & 1) === 1
}
