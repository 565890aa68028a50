/**
 * Seed tests' helpers: the documented manual procedure done by hand with VHD files (snapshot,
 * export each disk through GET /export_raw_vdi to a file, create a VM with the same disks on
 * the target SR, import the files through PUT /import_raw_vdi) and record snapshots to prove
 * a refusal wrote nothing. Not a test file itself.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { XapiClient } from '../../src/xapi/client.js'
import { exportVdi, importVdi } from '../../src/xapi/transfer.js'
import { NULL_REF, asRef, type Ref } from '../../src/xapi/types.js'
import { createVbd } from '../../src/xapi/vbd.js'
import { createVdi } from '../../src/xapi/vdi.js'
import { createVm, snapshotVm } from '../../src/xapi/vm.js'
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
export async function handMadeCopy(f: Fixture, snapshot: Ref<'VM'>, srUuid: string, dir: string, options: { sizeDelta?: number } = {}): Promise<{ ref: Ref<'VM'>; uuid: string }> {
  const snap = await f.source.getRecord('VM', snapshot)
  const files: { path: string; userdevice: string; size: number; name: string }[] = []
  for (const vbdRef of snap.VBDs) {
    const vbd = await f.source.getRecord('VBD', vbdRef)
    if (vbd.type !== 'Disk') continue
    const vdi = await f.source.getRecord('VDI', vbd.VDI)
    const path = join(dir, `${vdi.uuid}.vhd`)
    const { stream, done } = await exportVdi(f.source, vbd.VDI, { format: 'vhd' })
    await Promise.all([pipeline(stream, createWriteStream(path)), done])
    files.push({ path, userdevice: vbd.userdevice, size: vdi.virtual_size + (options.sizeDelta ?? 0), name: vdi.name_label })
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
    name_label: `${name} (imported)`,
    name_description: '',
    user_version: 1,
    is_a_template: false,
    affinity: NULL_REF,
    memory_static_max: 1 << 30,
    memory_dynamic_max: 1 << 30,
    memory_dynamic_min: 1 << 30,
    memory_static_min: 1 << 29,
    VCPUs_params: {},
    VCPUs_max: 1,
    VCPUs_at_startup: 1,
    actions_after_shutdown: 'destroy',
    actions_after_reboot: 'restart',
    actions_after_crash: 'restart',
    PV_bootloader: '',
    PV_kernel: '',
    PV_ramdisk: '',
    PV_args: '',
    PV_bootloader_args: '',
    PV_legacy_args: '',
    HVM_boot_policy: 'BIOS order',
    HVM_boot_params: { order: 'cd' },
    platform: {},
    PCI_bus: '',
    other_config: {},
    recommendations: '',
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
  const [vms, vdis, vbds] = await Promise.all([client.getAllRecords('VM'), client.getAllRecords('VDI'), client.getAllRecords('VBD')])
  const strip = (map: Map<string, object>): unknown[] =>
    [...map].sort(([a], [b]) => a.localeCompare(b)).map(([ref, r]) => {
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
