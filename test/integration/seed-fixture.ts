/**
 * Seed tests' helpers: the documented manual procedure done by hand with VHD files (snapshot,
 * export each disk through GET /export_raw_vdi to a file, create a VM with the same disks on
 * the target SR, import the files through PUT /import_raw_vdi), the same with one XVA
 * (GET /export, PUT /import), and record snapshots to prove a refusal wrote nothing. Not a test
 * file itself.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { XapiClient } from '../../src/xapi/client.js'
import { exportVdi, importVdi } from '../../src/xapi/transfer.js'
import { asRef, type Ref } from '../../src/xapi/types.js'
import { createVbd } from '../../src/xapi/vbd.js'
import { createVdi } from '../../src/xapi/vdi.js'
import { createVm, setVmIsATemplate, snapshotVm } from '../../src/xapi/vm.js'
import { VM_CREATE_RECORD } from './lab-rpc.js'
import { disksOf, type Fixture } from './replication-fixture.js'

/** `xe vm-snapshot` of the fixture's VM. */
export async function manualSnapshot(f: Fixture, name = 'seed snapshot'): Promise<{ ref: Ref<'VM'>; uuid: string }> {
  const ref = await snapshotVm(f.source, f.vmRef, name)
  return { ref, uuid: (await f.source.getRecord('VM', ref)).uuid }
}

/**
 * The hand-made copy: each snapshot disk exported as a VHD file into `dir`, then a new halted
 * VM on the target SR with disks of the same sizes at the same userdevices, imported from the
 * files. Returns the new VM.
 */
export async function handMadeCopy(
  f: Fixture,
  snapshot: Ref<'VM'>,
  srUuid: string,
  dir: string,
  options: { sizeDelta?: number } = {},
): Promise<{ ref: Ref<'VM'>; uuid: string }> {
  const snap = await f.source.getRecord('VM', snapshot)
  const files: { path: string; userdevice: string; size: number; name: string }[] = []
  for (const vbdRef of snap.VBDs) {
    const vbd = await f.source.getRecord('VBD', vbdRef)
    if (vbd.type !== 'Disk') continue
    const vdi = await f.source.getRecord('VDI', vbd.VDI)
    const path = join(dir, `${vdi.uuid}.vhd`)
    const { stream, done } = await exportVdi(f.source, vbd.VDI, { format: 'vhd' })
    await Promise.all([pipeline(stream, createWriteStream(path)), done])
    files.push({
      path,
      userdevice: vbd.userdevice,
      size: vdi.virtual_size + (options.sizeDelta ?? 0),
      name: vdi.name_label,
    })
  }
  return importCopy(f.target, snap.name_label, files, srUuid)
}

/** Creates a VM like `xe vm-import` would (halted, no replication keys) and imports VHD files as its disks. */
export async function importCopy(
  target: XapiClient,
  name: string,
  files: readonly { path: string; userdevice: string; size: number; name: string }[],
  srUuid: string,
): Promise<{ ref: Ref<'VM'>; uuid: string }> {
  const sr = await target.getByUuid('SR', srUuid)
  const vm = await createVm(target, {
    ...VM_CREATE_RECORD,
    name_label: `${name} (imported)`,
    name_description: '',
    HVM_boot_params: { order: 'cd' },
  })
  for (const file of files) {
    const vdi = await createVdi(target, { SR: sr, virtual_size: file.size, name_label: file.name })
    await createVbd(target, { VM: vm, VDI: vdi, userdevice: file.userdevice, bootable: file.userdevice === '0' })
    await importVdi(target, vdi, createReadStream(file.path), { format: 'vhd' })
  }
  return { ref: vm, uuid: (await target.getRecord('VM', vm)).uuid }
}

/** Every VM and VDI record of a pool, to compare before and after a refused request. */
export async function recordsSnapshot(client: XapiClient): Promise<string> {
  const [vms, vdis, vbds] = await Promise.all([
    client.getAllRecords('VM'),
    client.getAllRecords('VDI'),
    client.getAllRecords('VBD'),
  ])
  const strip = (map: Map<string, object>): unknown[] =>
    [...map]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([ref, r]) => {
        // current/allowed operations move with any task in flight, and a snapshot taken and
        // destroyed again leaves the live disk on a new storage layer (sm_config vhd-parent) until
        // coalesce, as on XAPI: none of it is data a seed writes
        const { allowed_operations: _a, current_operations: _c, sm_config: _s, ...rest } = r as Record<string, unknown>
        return [ref, rest]
      })
  return JSON.stringify({ vms: strip(vms), vdis: strip(vdis), vbds: strip(vbds) })
}

/** The disks of a VM on the target, as refs. */
export async function targetDisks(f: Fixture, vm: Ref<'VM'>): Promise<Ref<'VDI'>[]> {
  return disksOf(f.target, vm)
}

export { asRef }

/**
 * The classic procedure's transfer, as `xe vm-export` / `xe vm-import` do it: the snapshot as
 * an XVA through GET /export into `file`, then PUT /import of the file onto the target SR.
 * An exported snapshot imports as a template; `asTemplate` leaves it so (the documented
 * procedure: seed and run accept the template), else it is turned into a plain VM as an older
 * procedure did (`xe vm-param-set is-a-template=false`). Returns the imported VM.
 */
export async function xvaCopy(
  f: Fixture,
  snapshotUuid: string,
  srUuid: string,
  file: string,
  options: { asTemplate?: boolean } = {},
): Promise<{ ref: Ref<'VM'>; uuid: string }> {
  const exportTask = await f.source.call<Ref<'task'>>('task.create', ['vm-export', ''])
  const url = new URL(
    `/export?session_id=${f.source.sessionId}&task_id=${exportTask}&uuid=${snapshotUuid}&use_compression=false`,
    f.source.url,
  )
  const response = await new Promise<IncomingMessage>((resolve, reject) =>
    httpRequest(url, resolve).on('error', reject).end(),
  )
  await pipeline(response, createWriteStream(file))
  const exported = await f.source.watchTask(exportTask)
  if (exported.status !== 'success') throw new Error(`XVA export failed: ${exported.error_info.join(' ')}`)

  const sr = await f.target.getByUuid('SR', srUuid)
  const importTask = await f.target.call<Ref<'task'>>('task.create', ['vm-import', ''])
  const target = new URL(`/import?session_id=${f.target.sessionId}&task_id=${importTask}&sr_id=${sr}`, f.target.url)
  const req = httpRequest(target, { method: 'PUT', headers: { 'content-length': String((await stat(file)).size) } })
  const answered = new Promise<IncomingMessage>((resolve, reject) => req.on('response', resolve).on('error', reject))
  await pipeline(createReadStream(file), req)
  const answer = await answered
  answer.resume()
  const imported = await f.target.watchTask(importTask)
  if (imported.status !== 'success') throw new Error(`XVA import failed: ${imported.error_info.join(' ')}`)
  const vm = asRef<'VM'>(/OpaqueRef:[0-9a-f-]+/.exec(imported.result)![0])
  if (options.asTemplate !== true) await setVmIsATemplate(f.target, vm, false)
  return { ref: vm, uuid: (await f.target.getRecord('VM', vm)).uuid }
}
