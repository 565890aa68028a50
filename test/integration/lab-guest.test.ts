/**
 * The guests of lab VMs as XO's health check sees them: after VM.start the tools report (a
 * VM_guest_metrics object, VM.guest_metrics pointing at it, with events), a guest without tools
 * never does, a halt takes the metrics away, and a guest with a health-check script answers
 * `planned` in `vm-data/xo-backup-health-check` with its verdict in VM.xenstore_data. The
 * behaviour travels with the VM's snapshots and clones. Without it a health check could not
 * pass, fail or time out on the lab.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Lab, LabPoolInfo } from '../../src/lab/start.js'
import { labPool, startTempLab } from '../helpers/lab.js'
import { failure, login, ok } from './lab-rpc.js'

const NULL = 'OpaqueRef:NULL'
const KEY = 'vm-data/xo-backup-health-check'

let lab: Lab | undefined
let pool: LabPoolInfo
let session: string

beforeAll(async () => {
  lab = await startTempLab({
    guest: { tools: 50 },
    pools: [
      {
        name: 'p',
        srs: [{ name: 'sr' }],
        networks: [{ name: 'management' }],
        vms: [
          { name: 'plain', disks: [{ size: '2 MiB' }], networks: ['management'] },
          { name: 'slow', disks: [{ size: '2 MiB' }], guest: { tools: 400 } },
          { name: 'no-tools', disks: [{ size: '2 MiB' }], guest: { tools: 'never' } },
          {
            name: 'checked',
            disks: [{ size: '2 MiB' }],
            guest: { healthCheck: { result: 'success', delayMs: 30 } },
          },
          { name: 'booted', powerState: 'Running', disks: [{ size: '2 MiB' }], networks: ['management'] },
        ],
      },
    ],
  })
  pool = labPool(lab, 'p')
  session = await login(pool)
})

afterAll(async () => {
  await lab?.stop()
})

async function vmNamed(name: string): Promise<string> {
  const [vm] = await ok<string[]>(pool.url, 'VM.get_by_name_label', session, name)
  return vm!
}

/** Waits through event.from (no timers) until `check` gives a value. */
async function until<T>(classes: string[], check: () => Promise<T | undefined>): Promise<T> {
  let token = ''
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    token = (await ok<{ token: string }>(pool.url, 'event.from', session, classes, token, 10)).token
  }
}

function metricsOf(vm: string): Promise<string | undefined> {
  return ok<string>(pool.url, 'VM.get_guest_metrics', session, vm).then(ref => (ref === NULL ? undefined : ref))
}

function xenstoreOf(vm: string): Promise<Record<string, string>> {
  return ok<Record<string, string>>(pool.url, 'VM.get_xenstore_data', session, vm)
}

async function start(vm: string): Promise<void> {
  await ok(pool.url, 'VM.start', session, vm, false, false)
}

describe('guest tools', () => {
  it('report a while after VM.start, through VM_guest_metrics and an event on the VM', async () => {
    const vm = await vmNamed('plain')
    const { token } = await ok<{ token: string }>(pool.url, 'event.from', session, ['vm_guest_metrics'], '', 0)
    await start(vm)
    const metrics = await until([`VM/${vm}`], () => metricsOf(vm))
    const record = await ok<Record<string, unknown>>(pool.url, 'VM_guest_metrics.get_record', session, metrics)
    expect(record).toMatchObject({
      PV_drivers_detected: true,
      PV_drivers_up_to_date: true,
      live: true,
      can_use_hotplug_vbd: 'yes',
      os_version: { distro: 'debian', major: '12' },
      PV_drivers_version: { major: '8', minor: '3' },
    })
    expect(Object.keys(record['networks'] as object)).toEqual(['0/ip', '0/ipv4/0', '0/ipv6/0'])
    expect(await ok(pool.url, 'VM_guest_metrics.get_PV_drivers_detected', session, metrics)).toBe(true)
    expect(Object.keys(await ok<object>(pool.url, 'VM_guest_metrics.get_all_records', session))).toContain(metrics)
    const events = await ok<{ events: { operation: string; ref: string }[] }>(
      pool.url,
      'event.from',
      session,
      ['vm_guest_metrics'],
      token,
      0,
    )
    expect(events.events).toContainEqual(expect.objectContaining({ operation: 'add', ref: metrics }))

    await ok(pool.url, 'VM.hard_shutdown', session, vm)
    expect(await metricsOf(vm)).toBeUndefined()
    expect(await failure(pool.url, 'VM_guest_metrics.get_record', session, metrics)).toEqual([
      'HANDLE_INVALID',
      ['VM_guest_metrics', metrics],
    ])
  })

  it('never report for a guest without tools, and lose a pending report on shutdown', async () => {
    const [none, slow, plain] = [await vmNamed('no-tools'), await vmNamed('slow'), await vmNamed('plain')]
    await start(none)
    await start(plain)
    await ok(pool.url, 'VM.clean_shutdown', session, plain)
    // `slow` reports 400 ms after its start, long after `no-tools` (and the cancelled `plain`) would have
    await start(slow)
    await until([`VM/${slow}`], () => metricsOf(slow))
    expect(await metricsOf(none)).toBeUndefined()
    expect(await metricsOf(plain)).toBeUndefined()
    expect(await ok(pool.url, 'VM.get_power_state', session, none)).toBe('Running')
    for (const vm of [none, slow]) await ok(pool.url, 'VM.hard_shutdown', session, vm)
  })

  it('are there already for a VM the spec starts only when the spec says what its guest does', async () => {
    // the lab-wide `guest` applies to the spec's running VM: it booted before the lab came up
    expect(await metricsOf(await vmNamed('booted'))).toBeDefined()
  })
})

describe('health-check verdicts in VM.xenstore_data', () => {
  it('answer `planned` in a clone of a snapshot, as XO starts one, with the source VM`s script', async () => {
    const source = await vmNamed('checked')
    const snapshot = await ok<string>(pool.url, 'VM.snapshot', session, source, 'replica-like')
    const clone = await ok<string>(pool.url, 'VM.clone', session, snapshot, 'Health Check - checked')
    // a clone of a snapshot is a template, as in XAPI
    await ok(pool.url, 'VM.set_is_a_template', session, clone, false)
    await ok(pool.url, 'VM.set_xenstore_data', session, clone, { [KEY]: 'planned' })
    await start(clone)
    const verdict = await until([`VM/${clone}`], async () => {
      const value = (await xenstoreOf(clone))[KEY]
      return value === 'success' || value === 'failure' ? value : undefined
    })
    expect(verdict).toBe('success')
    expect(await metricsOf(clone)).toBeDefined()
    await ok(pool.url, 'VM.hard_shutdown', session, clone)
    await ok(pool.url, 'VM.destroy', session, clone)
  })

  it('are left alone at a boot that is not a health check (no `planned`)', async () => {
    const vm = await vmNamed('checked')
    await start(vm)
    await until([`VM/${vm}`], () => metricsOf(vm))
    expect(await xenstoreOf(vm)).toEqual({})
    await ok(pool.url, 'VM.hard_shutdown', session, vm)
  })

  it('follow what the control API sets, and the guest writes xenstore keys on request', async () => {
    const vm = await vmNamed('plain')
    const uuid = await ok<string>(pool.url, 'VM.get_uuid', session, vm)
    const set = await fetch(`${pool.url}/lab/vms/${uuid}/guest`, {
      method: 'POST',
      body: JSON.stringify({ guest: { tools: 10, healthCheck: { result: 'failure', error: 'database down' } } }),
    })
    expect(set.status).toBe(200)
    const copy = await ok<string>(pool.url, 'VM.copy', session, vm, 'copied', '')
    await ok(pool.url, 'VM.add_to_xenstore_data', session, copy, KEY, 'planned')
    await start(copy)
    const answered = await until([`VM/${copy}`], async () => {
      const data = await xenstoreOf(copy)
      return data[KEY] === 'failure' ? data : undefined
    })
    expect(answered).toEqual({ [KEY]: 'failure', 'vm-data/xo-backup-health-check-error': 'database down' })

    const copyUuid = await ok<string>(pool.url, 'VM.get_uuid', session, copy)
    const write = await fetch(`${pool.url}/lab/vms/${copyUuid}/xenstore`, {
      method: 'POST',
      body: JSON.stringify({ data: { [KEY]: 'success', 'vm-data/other': 'x' } }),
    })
    expect(write.status).toBe(200)
    expect(await xenstoreOf(copy)).toMatchObject({ [KEY]: 'success', 'vm-data/other': 'x' })
    // only a running guest writes
    const halted = await fetch(`${pool.url}/lab/vms/${uuid}/xenstore`, {
      method: 'POST',
      body: JSON.stringify({ pool: 'p', data: { [KEY]: 'success' } }),
    })
    expect(halted.status).toBe(400)
    expect(((await halted.json()) as { error: string }).error).toMatch(/is Halted, not Running/)
    const bad = await fetch(`${pool.url}/lab/vms/${uuid}/guest`, {
      method: 'POST',
      body: JSON.stringify({ guest: { tools: 'soon' } }),
    })
    expect(bad.status).toBe(400)

    lab!.control.setGuest('p', vm, null)
    expect(await ok(pool.url, 'VM.get_other_config', session, vm)).not.toHaveProperty('xen-cr-lab:guest')
    await ok(pool.url, 'VM.hard_shutdown', session, copy)
  })
})
