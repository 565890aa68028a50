import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Lab } from '../../src/lab/start.js'
import type { XapiClient } from '../../src/xapi/client.js'
import type { Ref, TaskRecord } from '../../src/xapi/types.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'

let lab: Lab
let client: XapiClient

beforeAll(async () => {
  lab = await startTempLab({
    pools: [
      { name: 'p', srs: [{ name: 'sr' }], vms: [{ name: 'vm1', powerState: 'Running', disks: [{ size: '4 MiB' }] }] },
    ],
  })
  client = await connectLabPool(labPool(lab, 'p'))
})

afterAll(async () => {
  await client?.close()
  await lab?.stop()
})

/** Hang detector for a wait that takes milliseconds when it works (not a timing assertion). */
function within<T>(promise: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

describe('task watching', () => {
  it('a task watched just as the event loop winds down, and every task watched after it, still settle', async () => {
    const [vm] = await client.call<string[]>('VM.get_by_name_label', ['vm1'])
    // a long latency keeps each Async.VM.snapshot pending until its task.cancel
    lab.control.injectFault('p', { kind: 'latency', method: 'VM.snapshot', ms: 600_000 })
    try {
      const pending = (): Promise<Ref<'task'>> => client.call<Ref<'task'>>('Async.VM.snapshot', [vm, 'never'])
      const [h, a, b, c] = [await pending(), await pending(), await pending(), await pending()]

      // H keeps the loop past its first read of the watched tasks, so that A is settled by an
      // event.from answer: the loop then sees no waiter left and ends at once, and B, watched in
      // the microtask right after A's waiter was resolved, arrives just as it is ending.
      const watchH = client.watchTask(h)
      let watchB: Promise<TaskRecord> | undefined
      const watchA = client.watchTask(a).then(record => {
        watchB = client.watchTask(b)
        return record
      })
      await client.call('task.cancel', [h])
      expect((await within(watchH, 'watching H')).status).toBe('cancelled')
      expect(await client.call('task.get_status', [a])).toBe('pending')
      await client.call('task.cancel', [a])
      expect((await within(watchA, 'watching A')).status).toBe('cancelled')
      await client.call('task.cancel', [b])
      expect((await within(watchB!, 'watching B')).status).toBe('cancelled')

      // That second loop ended too; a later watch must start a loop of its own again.
      expect(await client.call('task.get_status', [c])).toBe('pending')
      const watchC = client.watchTask(c)
      await client.call('task.cancel', [c])
      expect((await within(watchC, 'watching C')).status).toBe('cancelled')
    } finally {
      lab.control.clearFaults('p')
    }
  })
})
