import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import { isXapiFault } from '../fault.js'
import { XvaFormatError, errorCode } from '../lab-error.js'
import { encodeXmlValue } from '../wire/xmlrpc.js'
import { OVA_XML, parseOvaXml } from '../xva/ova-xml.js'
import type { XvaImportPlan } from '../xva/import-records.js'
import { TarReader } from '../xva/tar.js'
import { receiveDisks } from '../xva/xva-reader.js'
import { TaskCancelled, chunkTaskHooks, metered, redirect, refuse, requestBody, withSession } from './disk-transfer.js'
import type { Meter } from './disk-transfer.js'
import type { DataPathFault, LabTaskHandle, XvaHandler } from './types.js'

/** ova.xml of a VM is a few KiB; anything near this is not an XVA. */
const MAX_OVA_XML = 64 * 1024 * 1024
/** What is read after the last chunk before the connection is closed. */
const DRAIN_LIMIT = 4 * 1024 * 1024

/**
 * `PUT /import` as XAPI serves it (reference §5.5, `import.ml`): the SR from `sr_id` /
 * `sr_uuid` (else the pool's default SR), 302 to a host that sees it, refusals first (ISO SR
 * 400, HTTP chunked body 403), then `200` with `task-id` before a byte of the body is read.
 * The body is an XVA (gzip accepted, as XAPI detects it; zstd refused): ova.xml creates the VM
 * and its devices, the chunks fill the new VDIs, and the task result is the array of the
 * imported VM refs. Every failure after the 200 is only in the task — `IMPORT_ERROR [msg]` for
 * a damaged tar or a bad checksum, `IMPORT_ERROR_PREMATURE_EOF` for a short body — and what was
 * created is destroyed again unless `force`.
 */
export const importXva: XvaHandler = async (req, res, ctx) => {
  // taken before the first await: a small body whose sender closes at once must not be lost
  const incoming = requestBody(req)
  return withSession(req, res, ctx, 'VM.import', async ({ query, openTask }) => {
    const srName = query.get('sr_id') ?? query.get('sr_uuid') ?? undefined
    const sr = ctx.lookupSr(srName)
    if (sr === undefined) {
      const error =
        srName === undefined
          ? ['DEFAULT_SR_NOT_FOUND', 'OpaqueRef:NULL']
          : query.has('sr_id')
            ? ['HANDLE_INVALID', 'SR', srName]
            : ['UUID_INVALID', 'SR', srName]
      return refuse(res, 404, openTask(), error)
    }
    const elsewhere = ctx.redirectForSr(sr)
    if (elsewhere !== undefined) return redirect(res, elsewhere, req)
    const task = openTask()
    if (task === undefined) return refuse(res, 404, undefined, [])
    if (sr.contentType === 'iso') return refuse(res, 400, task, ['SR_OPERATION_NOT_SUPPORTED'])
    if (req.headers['transfer-encoding'] !== undefined)
      return refuse(res, 403, task, ['IMPORT_ERROR_CANNOT_HANDLE_CHUNKED'])

    res.useChunkedEncodingByDefault = false
    res.writeHead(200, { Connection: 'close', 'task-id': task.ref, 'content-type': 'application/octet-stream' })
    res.flushHeaders()

    const meter: Meter = { bytes: 0, cut: false }
    const late = lateFault()
    let imported: { plan: XvaImportPlan; tar: TarReader }
    const force = query.get('force') === 'true'
    try {
      const body = await decompressed(metered(incoming, { task, total: 0, fault: late.view, meter }))
      imported = await importBody(ctx, body, sr.ref, task, { restore: query.get('restore') === 'true', force }, late)
      if (meter.cut) {
        // the cut fell after the last chunk (in the tar end): still a failed transfer
        if (!force) await imported.plan.undo()
        throw new XvaFormatError('XVA_TRUNCATED', 'cut by a lab fault', meter.bytes)
      }
    } catch (error) {
      const [code, ...params] = taskError(error, task)
      task.fail(code!, params)
      // stop the sender: the 200 is out already, so all it sees is the connection going away
      req.socket.destroy()
      return
    }
    imported.plan.complete()
    const failTask = late.fault?.failTask
    if (failTask !== undefined && failTask.length > 0) task.fail(failTask[0]!, failTask.slice(1))
    else task.succeed(encodeXmlValue([...imported.plan.vmRefs]))
    // XAPI stops reading after the last chunk. We take the tar end too (bounded), so that a
    // sender of an exact-length body is not reset while its last bytes are still in flight;
    // a sender that closes instead (the JS client's 1 PiB mode) just ends the drain.
    await imported.tar.drain(DRAIN_LIMIT).catch(() => undefined)
    res.end()
  })
}

async function importBody(
  ctx: Parameters<XvaHandler>[2],
  body: AsyncIterable<Buffer>,
  srRef: string,
  task: LabTaskHandle,
  options: { restore: boolean; force: boolean },
  late: LateFault,
): Promise<{ plan: XvaImportPlan; tar: TarReader }> {
  const tar = new TarReader(body)
  const first = await tar.next()
  if (first === undefined || first.name !== OVA_XML) throw new UnexpectedFile(OVA_XML, first?.name ?? '')
  const ova = parseOvaXml((await tar.body(MAX_OVA_XML)).toString('utf8'), first.offset)
  const ours = ctx.xvaVersion()
  if (
    ova.version.xapiMajor > ours.xapiMajor ||
    (ova.version.xapiMajor === ours.xapiMajor && ova.version.xapiMinor > ours.xapiMinor)
  ) {
    throw new ImportRefused(['IMPORT_INCOMPATIBLE_VERSION'])
  }
  const plan = await ctx.importVm(ova.objects, srRef, {
    ...options,
    taskRef: task.ref,
  })
  for (const disk of plan.disks) {
    late.fault = ctx.takeFault('import', disk.vdi)
    if (late.fault !== undefined) break
  }
  const total = plan.disks.reduce((sum, disk) => sum + disk.size, 0)
  try {
    await receiveDisks(
      tar,
      plan.disks.map(disk => ({
        id: disk.id,
        size: disk.size,
        write: (offset, data) => ctx.storage.write(disk.vdi.diskId, offset, data),
      })),
      {
        exportVsn: ova.version.exportVsn,
        force: options.force,
        ...chunkTaskHooks(task, total),
      },
    )
  } catch (error) {
    for (const disk of plan.disks) ctx.vdiChanged(disk.vdi)
    if (!options.force) await plan.undo()
    throw error
  }
  for (const disk of plan.disks) ctx.vdiChanged(disk.vdi)
  return { plan, tar }
}

/**
 * A data-path fault for a transfer whose VDIs do not exist when the body starts: the metering
 * reads the fault's fields on every piece, so a fault taken once the VDIs are created (for the
 * first of them that has one) applies from then on, its byte count from the start of the body.
 */
interface LateFault {
  fault: DataPathFault | undefined
  readonly view: DataPathFault
}

function lateFault(): LateFault {
  const late: LateFault = {
    fault: undefined,
    view: {
      get cutAfterBytes() {
        return late.fault?.cutAfterBytes
      },
      get bytesPerSecond() {
        return late.fault?.bytesPerSecond
      },
    } as DataPathFault,
  }
  return late
}

/** The first member is not ova.xml. */
class UnexpectedFile extends Error {
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`expected ${expected}, got ${actual}`)
  }
}

/** A refusal with XAPI's error, raised after the 200. */
class ImportRefused extends Error {
  constructor(readonly error: readonly string[]) {
    super(error.join(' '))
  }
}

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd])

/**
 * The body, gunzipped when it starts with the gzip magic (XAPI tries a plain tar first, then
 * the decompressor the magic names). zstd is refused: Node 20 has no zstd.
 */
async function decompressed(body: AsyncIterable<Buffer>): Promise<AsyncIterable<Buffer>> {
  const iterator = body[Symbol.asyncIterator]()
  let head = Buffer.alloc(0)
  while (head.length < 4) {
    const next = await iterator.next()
    if (next.done === true) break
    head = Buffer.concat([head, next.value])
  }
  async function* whole(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head
    for (;;) {
      const next = await iterator.next()
      if (next.done === true) return
      yield next.value
    }
  }
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    const gunzip = createGunzip()
    // a failure on either side destroys gunzip with the error, which its reader then sees
    pipeline(Readable.from(whole()), gunzip).catch(() => undefined)
    return gunzip
  }
  if (head.subarray(0, 4).equals(ZSTD_MAGIC))
    throw new ImportRefused(['IMPORT_ERROR', 'zstd-compressed XVA: the lab cannot decompress zstd'])
  return whole()
}

/** The task error for a failure after the 200, as `import.ml`'s `with_error_handling` maps it. */
function taskError(error: unknown, task: LabTaskHandle): string[] {
  if (error instanceof TaskCancelled) return ['TASK_CANCELLED', task.ref]
  if (error instanceof ImportRefused) return [...error.error]
  if (error instanceof UnexpectedFile) return ['IMPORT_ERROR_UNEXPECTED_FILE', error.expected, error.actual]
  if (isXapiFault(error)) return error.toArray()
  if (error instanceof XvaFormatError) {
    switch (error.code) {
      case 'XVA_TRUNCATED':
        // the body ended before the archive did: OCaml's End_of_file
        return ['IMPORT_ERROR_PREMATURE_EOF']
      case 'XVA_MISSING_OBJECT':
        return ['IMPORT_ERROR_FAILED_TO_FIND_OBJECT', error.detail]
      case 'XVA_BEYOND_DISK':
        return ['VDI_IO_ERROR', 'Device I/O error']
      default:
        return ['IMPORT_ERROR', error.detail]
    }
  }
  // the sender went away mid-body (the tar reads through the VHD library's byte reader)
  if (errorCode(error) === 'VHD_SOURCE_ERROR') return ['IMPORT_ERROR_PREMATURE_EOF']
  const message = error instanceof Error ? error.message : String(error)
  // the VHD library's and the lab's coded errors end with where in the stream they happened
  return ['IMPORT_ERROR', errorCode(error) === undefined ? message : message.replace(/ \(at byte \d+\)$/, '')]
}
