/**
 * The lab's disk data paths driven by Vates' real `xen-api` client (getResource/putResource),
 * as Xen Orchestra drives XAPI: a VHD export read with our reader, an upload of unknown length
 * (empty probe PUT, then the 1 PiB content-length hack whose VDI_IO_ERROR the client ignores)
 * and an upload with an exact length whose task returns the VDI ref.
 */
import type { Readable } from 'node:stream'
import { createClient, type Xapi } from 'xen-api'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Lab } from '../../src/lab/start.js'
import type { LabSpec } from '../../src/lab/spec.js'
import { normaliseVhd } from '../../src/vhd/normalise.js'
import { readVhd } from '../../src/vhd/reader.js'
import { startTempLab } from '../helpers/lab.js'

const MiB = 1024 * 1024

const SPEC: LabSpec = {
  pools: [
    {
      name: 'p',
      hosts: ['h1'],
      srs: [{ name: 'Local', type: 'ext' }],
      vms: [
        { name: 'alpha', disks: [{ size: '8 MiB', filled: '5 MiB', seed: 17 }] },
        { name: 'beta', disks: [{ size: '8 MiB' }] },
        { name: 'gamma', disks: [{ size: '8 MiB' }] },
      ],
    },
  ],
}

/** The parts of the client's HTTP API this test uses (not in our ambient types). */
interface ResourceApi {
  getResource(
    pathname: string,
    options: { query: Record<string, string>; task?: boolean },
  ): Promise<{ statusCode: number; headers: Record<string, string>; body: Readable; task: Promise<unknown> }>
  putResource(
    body: Readable,
    pathname: string,
    options: { query: Record<string, string>; task?: boolean },
  ): Promise<unknown>
}

let lab: Lab
let xapi: Xapi & ResourceApi

beforeAll(async () => {
  lab = await startTempLab(SPEC)
  const pool = lab.pools[0]!
  xapi = createClient({
    url: pool.url,
    auth: { user: pool.user, password: pool.password },
    watchEvents: true,
  }) as Xapi & ResourceApi
  await xapi.connect()
  await xapi.objectsFetched
})

afterAll(async () => {
  await xapi?.disconnect()
  await lab?.stop()
})

function disk(name: string): { ref: string; uuid: string } {
  const vm = lab.control.findVm('p', name)
  const vdi = vm?.vdis[0]
  if (vdi === undefined) throw new Error(`no disk for ${name}`)
  return vdi
}

describe('lab disk paths with the real xen-api client', () => {
  it('exports a VHD through getResource whose blocks are the guest data, and completes the task', async () => {
    const alpha = disk('alpha')
    const response = await xapi.getResource('/export_raw_vdi/', {
      query: { format: 'vhd', vdi: alpha.ref },
      task: true,
    })
    expect(response.statusCode).toBe(200)
    const seen: number[] = []
    for await (const item of readVhd(response.body)) {
      if (item.kind !== 'block') continue
      seen.push(item.index)
      expect(item.data.equals(await lab.control.readGuestData('p', alpha.uuid, item.index * 2 * MiB, 2 * MiB))).toBe(
        true,
      )
    }
    expect(seen).toEqual([0, 1, 2])
    await expect(response.task).resolves.toBe('')
  })

  it('imports a stream of unknown length (probe PUT, 1 PiB hack) and the data lands', async () => {
    const alpha = disk('alpha')
    const beta = disk('beta')
    const exported = await xapi.getResource('/export_raw_vdi/', {
      query: { format: 'vhd', vdi: alpha.ref },
      task: true,
    })
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined)
    try {
      // the client ignores the VDI_IO_ERROR that the hack provokes; anything else would throw here
      await xapi.putResource(exported.body, '/import_raw_vdi/', { query: { format: 'vhd', vdi: beta.ref }, task: true })
      const warnings = warn.mock.calls.map(args => args.map(String).join(' '))
      expect(warnings.some(line => line.includes('missing length'))).toBe(true)
      expect(warnings.some(line => line.includes('VDI_IO_ERROR'))).toBe(true)
    } finally {
      warn.mockRestore()
    }
    await exported.task
    const want = await lab.control.readGuestData('p', alpha.uuid, 0, 8 * MiB)
    expect((await lab.control.readGuestData('p', beta.uuid, 0, 8 * MiB)).equals(want)).toBe(true)
  })

  it('imports a normalised stream with an exact length, and the task returns the VDI ref', async () => {
    const alpha = disk('alpha')
    const gamma = disk('gamma')
    const exported = await xapi.getResource('/export_raw_vdi/', {
      query: { format: 'vhd', vdi: alpha.ref },
      task: true,
    })
    const normalised = await normaliseVhd(exported.body)
    // the client sends Content-Length when the stream says how long it is
    const body = Object.assign(normalised.stream, { length: normalised.length })
    const result = await xapi.putResource(body, '/import_raw_vdi/', {
      query: { format: 'vhd', vdi: gamma.ref },
      task: true,
    })
    expect(result).toBe(gamma.ref)
    await exported.task
    const want = await lab.control.readGuestData('p', alpha.uuid, 0, 8 * MiB)
    expect((await lab.control.readGuestData('p', gamma.uuid, 0, 8 * MiB)).equals(want)).toBe(true)
  })
})
