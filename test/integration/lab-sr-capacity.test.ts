/**
 * The lab's SRs have a size: a copy, a new VDI or an import that would take an SR's physical
 * utilisation past its physical size fails with `SR_FULL [requested, maximum]` as on XAPI, and
 * leaves nothing behind. Thin provisioning: allocated bytes count, virtual sizes do not. Also the
 * start-order setters, and what VM.clone / VM.snapshot keep of the start order and HA settings.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Lab } from '../../src/lab/start.js'
import { startTempLab } from '../helpers/lab.js'
import { awaitTask, failure, login, ok } from './lab-rpc.js'

const MiB = 1024 * 1024
let lab: Lab | undefined
let url: string
let s: string

type Rec = Record<string, unknown>
const rec = (cls: string, ref: string): Promise<Rec> => ok<Rec>(url, `${cls}.get_record`, s, ref)
const one = async (cls: string, name: string): Promise<string> =>
  (await ok<string[]>(url, `${cls}.get_by_name_label`, s, name))[0]!
const count = async (cls: string): Promise<number> => (await ok<string[]>(url, `${cls}.get_all`, s)).length

async function diskOf(vm: string): Promise<string> {
  const [vbd] = (await rec('VM', vm))['VBDs'] as string[]
  return (await rec('VBD', vbd!))['VDI'] as string
}

const VDI_RECORD = (sr: string, name = 'new'): Rec => ({
  name_label: name,
  SR: sr,
  virtual_size: String(64 * MiB),
  type: 'user',
  sharable: false,
  read_only: false,
  other_config: {},
})

function createVdi(sr: string, name: string): Promise<string> {
  return ok<string>(url, 'VDI.create', s, VDI_RECORD(sr, name))
}

/** `PUT /import_raw_vdi` of `bytes` non-zero bytes from offset 0; the finished task. */
async function importRaw(vdi: string, bytes: number): Promise<Rec> {
  const response = await fetch(`${url}/import_raw_vdi?session_id=${s}&vdi=${vdi}&format=raw`, {
    method: 'PUT',
    body: Buffer.alloc(bytes, 0x5a),
  })
  await response.arrayBuffer().catch(() => undefined)
  const task = response.headers.get('task-id')
  expect(task).toBeTruthy()
  return awaitTask(url, s, task!)
}

beforeAll(async () => {
  lab = await startTempLab({
    pools: [
      {
        name: 'p',
        users: [{ user: 'root', password: 'pw' }],
        srs: [{ name: 'big' }, { name: 'small', size: '4 MiB' }],
        vms: [{ name: 'six', disks: [{ size: '16 MiB', filled: '6 MiB', seed: 3, sr: 'big' }] }],
      },
    ],
  })
  url = lab.pools[0]!.url
  s = await login(lab.pools[0]!)
})

afterAll(async () => {
  await lab?.stop()
})

describe('SR capacity', () => {
  it('refuses VM.copy and VDI.copy onto an SR without room for the allocated bytes, creating nothing', async () => {
    const [vm, small] = [await one('VM', 'six'), await one('SR', 'small')]
    const before = { vms: await count('VM'), vdis: await count('VDI') }
    // 6 MiB allocated (16 MiB virtual) onto an empty 4 MiB SR
    expect(await failure(url, 'VDI.copy', s, await diskOf(vm), small)).toEqual([
      'SR_FULL',
      [String(6 * MiB), String(4 * MiB)],
    ])
    expect(await failure(url, 'VM.copy', s, vm, 'copy', small)).toEqual(['SR_FULL', [String(6 * MiB), String(4 * MiB)]])
    expect({ vms: await count('VM'), vdis: await count('VDI') }).toEqual(before)
    expect((await rec('SR', small))['physical_utilisation']).toBe(0)
  })

  it('counts what imports write: fills up to the size, then refuses new disks and the block that does not fit', async () => {
    const small = await one('SR', 'small')
    // 64 MiB virtual on a 4 MiB SR: thin, so it is created
    const first = await createVdi(small, 'first')
    expect((await importRaw(first, 4 * MiB))['status']).toBe('success')
    expect((await rec('SR', small))['physical_utilisation']).toBe(4 * MiB)
    // rewriting blocks the disk already holds takes no more space
    expect((await importRaw(first, 4 * MiB))['status']).toBe('success')

    const vdis = await count('VDI')
    expect(await failure(url, 'VDI.create', s, VDI_RECORD(small))).toEqual([
      'SR_FULL',
      [String(6 * MiB), String(4 * MiB)],
    ])
    expect(await count('VDI')).toBe(vdis)

    await ok(url, 'SR.set_physical_size', s, small, String(6 * MiB))
    const second = await createVdi(small, 'second')
    const task = await importRaw(second, 4 * MiB)
    expect([task['status'], task['error_info']]).toEqual(['failure', ['SR_FULL', String(8 * MiB), String(6 * MiB)]])
    // the block that fitted was written; the SR is exactly full
    expect((await rec('VDI', second))['physical_utilisation']).toBe(2 * MiB)
    expect((await rec('SR', small))['physical_utilisation']).toBe(6 * MiB)
  })
})

describe('start order and HA on VM copies', () => {
  it('sets order, start_delay and shutdown_delay (never negative); clone and snapshot reset them and keep the HA priority', async () => {
    const vm = await one('VM', 'six')
    await ok(url, 'VM.set_order', s, vm, '2')
    await ok(url, 'VM.set_start_delay', s, vm, '30')
    await ok(url, 'VM.set_shutdown_delay', s, vm, '5')
    await ok(url, 'VM.set_ha_restart_priority', s, vm, 'restart')
    // xapi_vm.set_start_delay: invalid_value "start_delay must be non-negative" (the value)
    expect(await failure(url, 'VM.set_start_delay', s, vm, '-1')).toEqual([
      'INVALID_VALUE',
      ['start_delay must be non-negative', '-1'],
    ])
    const record = await rec('VM', vm)
    expect([record['order'], record['start_delay'], record['shutdown_delay']]).toEqual([2, 30, 5])

    for (const made of [
      await ok<string>(url, 'VM.clone', s, vm, 'six clone'),
      await ok<string>(url, 'VM.snapshot', s, vm, 'six snapshot'),
    ]) {
      const copy = await rec('VM', made)
      expect([copy['order'], copy['start_delay'], copy['shutdown_delay']]).toEqual([0, 0, 0])
      expect([copy['ha_restart_priority'], copy['ha_always_run']]).toEqual(['restart', false])
    }
  })
})
