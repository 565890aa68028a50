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

describe('task watching from a kept event.from token', () => {
  let vm: string
  const calls = (): Record<string, { calls: number }> => lab.control.transferStats('p').xapi.byMethod
  /** A task that completes at once (no fault on VM.snapshot). */
  const quick = (label: string): Promise<Ref<'task'>> => client.call<Ref<'task'>>('Async.VM.snapshot', [vm, label])
  /** A task that stays pending until cancelled (a latency fault on VM.snapshot must be armed). */
  const held = (): Promise<Ref<'task'>> => client.call<Ref<'task'>>('Async.VM.snapshot', [vm, 'held'])
  async function settledOnPool(task: Ref<'task'>, by: XapiClient = client): Promise<void> {
    while ((await by.call('task.get_status', [task])) === 'pending') await new Promise(r => setTimeout(r, 10))
  }

  beforeAll(async () => {
    ;[vm] = (await client.call<string[]>('VM.get_by_name_label', ['vm1'])) as [string]
    // the client holds a token from here on
    await within(client.watchTask(await quick('first')), 'first watch')
  })

  it('settles a task that completed while no loop ran, from events alone (no read, no new token)', async () => {
    const task = await quick('while stopped')
    await settledOnPool(task)
    lab.control.resetTransferStats()
    // Before: every watch read its task (task.get_record), and each new loop took a token (event.inject).
    expect((await within(client.watchTask(task), 'watching a settled task')).status).toBe('success')
    expect(calls()['task.get_record']).toBeUndefined()
    expect(calls()['event.inject']).toBeUndefined()
    expect(calls()['event.from']?.calls).toBe(1)
  })

  it('settles two tasks watched at once, each when it completes', async () => {
    lab.control.injectFault('p', { kind: 'latency', method: 'VM.snapshot', ms: 600_000 })
    try {
      const [a, b] = [await held(), await held()]
      lab.control.resetTransferStats()
      const watchA = client.watchTask(a)
      const watchB = client.watchTask(b)
      let aDone = false
      void watchA.then(() => (aDone = true))
      await client.call('task.cancel', [b])
      expect((await within(watchB, 'watching B')).status).toBe('cancelled')
      expect(aDone).toBe(false)
      await client.call('task.cancel', [a])
      expect((await within(watchA, 'watching A')).status).toBe('cancelled')
      expect(calls()['task.get_record']).toBeUndefined()
    } finally {
      lab.control.clearFaults('p')
    }
  })

  it('after EVENTS_LOST takes a fresh token and reads the task, so its completion is not missed', async () => {
    lab.control.injectFault('p', { kind: 'latency', method: 'VM.snapshot', ms: 600_000 })
    try {
      const task = await held()
      lab.control.injectFault('p', { kind: 'error', method: 'event.from', code: 'EVENTS_LOST', nth: 1 })
      lab.control.resetTransferStats()
      const watched = client.watchTask(task)
      await client.call('task.cancel', [task])
      expect((await within(watched, 'watching after EVENTS_LOST')).status).toBe('cancelled')
      expect(calls()['event.inject']?.calls).toBe(1)
      expect(calls()['task.get_record']?.calls).toBe(1)
    } finally {
      lab.control.clearFaults('p')
    }
  })

  it('reads a task it did not see made (another session made it), which had completed before the watch', async () => {
    const other = await connectLabPool(labPool(lab, 'p'))
    try {
      const task = await other.call<Ref<'task'>>('Async.VM.snapshot', [vm, 'by another session'])
      await settledOnPool(task, other)
      lab.control.resetTransferStats()
      expect((await within(client.watchTask(task), 'watching a foreign task')).status).toBe('success')
      expect(calls()['task.get_record']?.calls).toBe(1)
    } finally {
      await other.close()
    }
  })

  it('fails TASK_DESTROYED for a task of its own destroyed before the watch, without waiting for events', async () => {
    const task = await quick('destroyed')
    await settledOnPool(task)
    await client.call('task.destroy', [task])
    await expect(within(client.watchTask(task), 'watching a destroyed task')).rejects.toMatchObject({
      code: 'TASK_DESTROYED',
    })
  })
})
