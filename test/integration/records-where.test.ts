/**
 * `get_all_records_where` through the real client over both transports against the lab, which
 * implements XAPI's filter language (xen-api `db_filter`): what a pass relies on to read only
 * its VMs works on the wire, and what XAPI cannot do (a map key) fails as on a host rather than
 * quietly matching.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isXapiError } from '../../src/errors.js'
import type { Lab } from '../../src/lab/start.js'
import type { XapiClient } from '../../src/xapi/client.js'
import { allOf, fieldIn, fieldIs, getAllRecordsWhere, getRecordsByRef, type WhereExpr } from '../../src/xapi/records.js'
import { connectLabPool, labPool, startTempLab } from '../helpers/lab.js'

let lab: Lab
const clients: Record<string, XapiClient> = {}

beforeAll(async () => {
  lab = await startTempLab({
    pools: [
      {
        name: 'p',
        srs: [{ name: 'Local storage' }],
        vms: ['a', 'b', 'c'].map(name => ({
          name,
          tags: [`tag-${name}`],
          otherConfig: { 'xo:backup:job': `job-${name}` },
          disks: [{ size: '2 MiB' }],
        })),
      },
    ],
  })
  for (const transport of ['json-rpc', 'xml-rpc'] as const)
    clients[transport] = await connectLabPool(labPool(lab, 'p'), { transport })
}, 120_000)

afterAll(async () => {
  for (const client of Object.values(clients)) await client.close()
  await lab?.stop()
})

describe.each(['json-rpc', 'xml-rpc'])('get_all_records_where over %s', transport => {
  it('returns exactly the records the expression selects, by uuid, by ref field and by _ref', async () => {
    const client = clients[transport]!
    const a = lab.control.findVm('p', 'a')!
    const c = lab.control.findVm('p', 'c')!
    const vms = await getAllRecordsWhere(client, 'VM', fieldIn('uuid', [a.uuid, c.uuid]))
    expect([...vms.values()].map(v => v.name_label).sort()).toEqual(['a', 'c'])
    expect(vms.get(a.ref as never)?.tags).toEqual(['tag-a'])

    const vbds = await getAllRecordsWhere(client, 'VBD', fieldIs('VM', a.ref))
    expect([...vbds.values()].map(v => v.VM)).toEqual([a.ref])
    const vdis = await getRecordsByRef(
      client,
      'VDI',
      [...vbds.values()].map(v => v.VDI),
    )
    expect([...vdis.values()].map(v => v.uuid)).toEqual([a.vdis[0]!.uuid])

    const live = allOf([fieldIs('is_a_snapshot', 'false'), fieldIs('is_control_domain', 'false')])
    expect((await getAllRecordsWhere(client, 'VM', live)).size).toBe(3)
    expect((await getAllRecordsWhere(client, 'VM', fieldIs('name__label', 'b'))).size).toBe(1)
    // No call at all for an expression that cannot hold.
    expect((await getAllRecordsWhere(client, 'VM', fieldIn('uuid', []))).size).toBe(0)
  })

  it('cannot match a map key: other_config:<key> is no column, and XAPI answers INTERNAL_ERROR', async () => {
    const client = clients[transport]!
    const byKey = 'field "other_config:xo:backup:job" = "job-a"' as WhereExpr
    const error = await getAllRecordsWhere(client, 'VM', byKey).catch((e: unknown) => e)
    expect(isXapiError(error, 'INTERNAL_ERROR')).toBe(true)
    expect(() => fieldIs('uuid', 'x"y')).toThrow(/double quote/)
  })
})
