/**
 * Child process of `xapi-transfer-memory.test.ts` and of `test/bench/transfer-memory.bench.mjs`:
 * one client transfer (export → import through the client, VHD) in a process of its own, so its
 * memory is the client's alone. Reads its job from the XEN_CR_MEMORY_JOB environment variable
 * (never argv: it holds a password) and prints one JSON line. Plain JavaScript on the built
 * modules (`npm run build`), so the process holds the client and nothing of the test runner.
 *
 * Besides the kernel's peak RSS (for the bench), it samples what the JavaScript side holds:
 * `heapUsed + external` (external includes every Buffer's memory), every 10 ms. A client that
 * buffered the disk would hold it there for the whole transfer, which no sampling can miss.
 */
import { XapiClient } from '../../dist/xapi/client.js'
import { exportVdi, importVdi } from '../../dist/xapi/transfer.js'
import { createVdi } from '../../dist/xapi/vdi.js'

/** @type {{ url: string, user: string, password: string, sourceVdiUuid: string }} */
const job = JSON.parse(process.env['XEN_CR_MEMORY_JOB'] ?? '{}')
const client = await XapiClient.connect({ url: job.url, user: job.user, password: job.password })
try {
  const source = await client.getByUuid('VDI', job.sourceVdiUuid)
  const record = await client.getRecord('VDI', source)
  const target = await createVdi(client, {
    SR: record.SR,
    virtual_size: record.virtual_size,
    name_label: 'memory test target',
  })

  const held = () => {
    const usage = process.memoryUsage()
    return usage.heapUsed + usage.external
  }
  const rssBefore = process.memoryUsage.rss()
  const heldBefore = held()
  let sampledPeak = rssBefore
  let heldPeak = heldBefore
  let samples = 0
  const sampler = setInterval(() => {
    sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss())
    heldPeak = Math.max(heldPeak, held())
    samples++
  }, 10)
  const started = Date.now()
  const exported = await exportVdi(client, source, { format: 'vhd' })
  const { bytes } = await importVdi(client, target, exported.stream, { format: 'vhd' })
  await exported.done
  clearInterval(sampler)
  const targetRecord = await client.getRecord('VDI', target)
  process.stdout.write(
    `${JSON.stringify({
      bytes,
      ms: Date.now() - started,
      maxRss: process.resourceUsage().maxRSS * 1024,
      rssBefore,
      cpuMs: Math.round((process.cpuUsage().user + process.cpuUsage().system) / 1000),
      sampledPeak,
      heldBefore,
      heldPeak,
      samples,
      targetUtilisation: targetRecord.physical_utilisation,
      targetVdiUuid: targetRecord.uuid,
    })}\n`,
  )
} finally {
  await client.close()
}
