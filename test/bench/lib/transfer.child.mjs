/**
 * Child process of the data-path benchmarks: one measured transfer of one or more disks, in a
 * process of its own so that its CPU time and peak RSS are its own. The job comes in
 * XEN_CR_BENCH_JOB (JSON; never argv, it holds passwords); one JSON line goes out.
 *
 * Modes (every disk of the job at once, in parallel):
 * - `xencr`: xen-cr's own disk path, `transferDisk` (GET /export_raw_vdi → normalise → PUT
 *   /import_raw_vdi, with tasks), progress throttled as a replication pass does it;
 * - `relay`: the plain relay, node:http only: the export's body piped into the import's request
 *   with the known length (`disks[i].length`), no parsing, no task;
 * - `export`: the export alone into a null sink (or into `disks[i].file`): what the lab's export costs;
 * - `import`: the import alone from `disks[i].file`: what the lab's import costs;
 * - `nbd`: the read path over NBD instead of the HTTP export (`VDI.get_nbd_info`, xen-cr's
 *   `NbdClient`): `disks[i].readBytes` from offset 0 in 2 MiB reads over `nbdConnections`
 *   connections per disk (one read in flight on each), into a null sink.
 * Logging in and making the target disks uses xen-cr's client and happens before the clock
 * starts; the target disks are destroyed after it stopped.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { request } from 'node:http'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

const dist = name => new URL(`../../../dist/${name}`, import.meta.url).href
const { XapiClient } = await import(dist('xapi/client.js'))
const { createVdi, destroyVdi } = await import(dist('xapi/vdi.js'))

/**
 * @type {{ mode: 'xencr'|'relay'|'export'|'import', source: {url: string, user: string, password: string},
 *   target: {url: string, user: string, password: string}, targetSr: string,
 *   disks: {vdiUuid: string, length?: number, file?: string}[] }}
 */
const job = JSON.parse(process.env['XEN_CR_BENCH_JOB'] ?? '{}')
const login = pool => XapiClient.connect({ url: pool.url, user: pool.user, password: pool.password })

const source = await login(job.source)
const target = job.mode === 'export' ? undefined : await login(job.target)
const created = []
try {
  const disks = []
  const sr = target === undefined ? undefined : (await target.call('SR.get_by_name_label', [job.targetSr]))[0]
  for (const disk of job.disks) {
    const vdi = await source.getByUuid('VDI', disk.vdiUuid)
    let targetVdi
    if (target !== undefined) {
      const record = await source.getRecord('VDI', vdi)
      targetVdi = await createVdi(target, { SR: sr, virtual_size: record.virtual_size, name_label: 'bench target' })
      created.push(targetVdi)
    }
    disks.push({ ...disk, vdi, targetVdi })
  }

  const transfer = await transferFor(job.mode)
  const rssBefore = process.memoryUsage.rss()
  const cpuBefore = process.cpuUsage()
  const started = process.hrtime.bigint()
  const bytes = await Promise.all(disks.map(transfer))
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6
  const cpu = process.cpuUsage(cpuBefore)
  process.stdout.write(
    `${JSON.stringify({
      mode: job.mode,
      bytes,
      wallMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
      maxRss: process.resourceUsage().maxRSS * 1024,
      rssBefore,
    })}\n`,
  )
} finally {
  for (const vdi of created) await destroyVdi(target, vdi).catch(() => undefined)
  await source.close()
  await target?.close()
}

async function transferFor(mode) {
  if (mode === 'xencr') {
    const { transferDisk } = await import(dist('delta/transfer-disk.js'))
    const { throttleProgress } = await import(dist('replication/progress-throttle.js'))
    let reports = 0
    return async d => {
      const progress = throttleProgress(() => reports++)
      const result = await transferDisk({ source, vdi: d.vdi, target, targetVdi: d.targetVdi, onProgress: progress })
      return result.bytes
    }
  }
  if (mode === 'relay') return relay
  if (mode === 'export') return exportOnly
  if (mode === 'import') return importOnly
  if (mode === 'nbd') {
    const { getNbdInfo } = await import(dist('xapi/nbd-info.js'))
    const { NbdClient } = await import(dist('xapi/nbd-client.js'))
    return async d => {
      const [info] = await getNbdInfo(source, d.vdi)
      if (info === undefined) throw new Error(`VDI ${d.vdiUuid} offers no NBD`)
      const BLOCK = 2 * 1024 * 1024
      let next = 0
      let bytes = 0
      const reader = async () => {
        const nbd = await NbdClient.connect(info)
        try {
          for (;;) {
            const offset = next
            if (offset >= d.readBytes) return
            next += BLOCK
            const data = await nbd.read(offset, Math.min(BLOCK, d.readBytes - offset))
            bytes += data.length
          }
        } finally {
          await nbd.close()
        }
      }
      await Promise.all(Array.from({ length: job.nbdConnections ?? 4 }, reader))
      return bytes
    }
  }
  throw new Error(`unknown mode ${mode}`)
}

function url(client, path, query) {
  const u = new URL(path, client.url)
  u.searchParams.set('session_id', client.sessionId)
  for (const [key, value] of Object.entries(query)) u.searchParams.set(key, value)
  return u
}

/** The response to a request, following redirects (XAPI sends a disk's path to its SR's host). */
function send(u, method, headers, body) {
  return new Promise((resolve, reject) => {
    const req = request(u, { method, headers, agent: false })
    req.on('error', reject)
    req.on('response', res => {
      if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location !== undefined) {
        res.resume()
        resolve(send(new URL(res.headers.location, u), method, headers, body))
      } else if (res.statusCode !== 200) {
        res.resume()
        reject(new Error(`${method} ${u.pathname}: HTTP ${res.statusCode}`))
      } else resolve({ req, res })
    })
    if (body === undefined) req.end()
    else body(req)
  })
}

async function openExport(d) {
  const { res } = await send(url(source, '/export_raw_vdi/', { vdi: d.vdi, format: 'vhd' }), 'GET', {})
  return res
}

/** PUT with the known length; `feed` pipes the body into the request. */
async function putImport(d, length, feed) {
  const headers = { 'content-length': String(length), 'content-type': 'application/octet-stream' }
  let fed
  const answered = send(url(target, '/import_raw_vdi/', { vdi: d.targetVdi, format: 'vhd' }), 'PUT', headers, req => {
    fed = feed(req)
  })
  const { res } = await answered
  res.resume()
  await Promise.all([fed, new Promise(done => res.on('end', done))])
}

async function relay(d) {
  const res = await openExport(d)
  await putImport(d, d.length, req => pipeline(res, req))
  return d.length
}

async function exportOnly(d) {
  const res = await openExport(d)
  let bytes = 0
  const sink =
    d.file === undefined
      ? new Writable({
          write(chunk, _encoding, callback) {
            bytes += chunk.length
            callback()
          },
        })
      : createWriteStream(d.file)
  if (d.file !== undefined) res.on('data', chunk => (bytes += chunk.length))
  await pipeline(res, sink)
  return bytes
}

async function importOnly(d) {
  await putImport(d, d.length, req => pipeline(createReadStream(d.file, { highWaterMark: 1024 * 1024 }), req))
  return d.length
}
