/**
 * Child process of `xapi-transfer-memory.test.ts`: one client transfer (export → import through
 * the client, VHD) in a process of its own, so its peak RSS is the client's alone. Reads its
 * job from the XEN_CR_MEMORY_JOB environment variable (never argv: it holds a password) and
 * prints one JSON line. Plain JavaScript on the built modules (`npm run build`), so the process
 * holds the client and nothing of the test runner.
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

  const rssBefore = process.memoryUsage.rss()
  let sampledPeak = rssBefore
  const sampler = setInterval(() => {
    sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss())
  }, 50)
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
      targetUtilisation: targetRecord.physical_utilisation,
    })}\n`,
  )
} finally {
  await client.close()
}
