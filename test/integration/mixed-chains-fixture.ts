/**
 * The predecessors xen-cr must continue, built in the lab through the XAPI calls each tool makes
 * (reference `xo-replication-behaviour.md` §1–2, and `@xen-orchestra/backups` 0.74.2's
 * `IncrementalXapi`, `IncrementalXapiWriter`, `_listReplicatedVms`, `_otherConfig`): one run of Xen
 * Orchestra's incremental replication in era A (keys on VMs only, a new replica VM per run), B
 * (keys on VMs and disks, a new replica VM per run) or C (6.3+: one replica VM updated in place,
 * one keyed target snapshot of it per run, its own keys reset), with XO's own retention; the copy
 * `xo-cr-seed` 1.0.2 keys; and the audit of what is left on an SR. Not a test file itself.
 */
import { transferDisk } from '../../src/delta/transfer-disk.js'
import { KEYS, PLACEHOLDER_DATETIME, REPLICA_TAG, START_BLOCKED_MESSAGE } from '../../src/replication/metadata.js'
import { destroyVmAndDisks } from '../../src/replication/destroy.js'
import type { XapiClient } from '../../src/xapi/client.js'
import type { Ref, VdiRecord, VmRecord } from '../../src/xapi/types.js'
import { createVbd } from '../../src/xapi/vbd.js'
import { cloneVdi, createVdi, setVdiOtherConfig } from '../../src/xapi/vdi.js'
import {
  addTag,
  blockOperation,
  createVm,
  setVmNameDescription,
  setVmNameLabel,
  setVmIsATemplate,
  setVmOtherConfig,
  snapshotVm,
} from '../../src/xapi/vm.js'
import { VM_CREATE_RECORD } from './lab-rpc.js'
import { disksOf, rawSha256, type Fixture } from './replication-fixture.js'

export type XoEra = 'A' | 'B' | 'C'

export interface XoJob {
  readonly jobId: string
  readonly scheduleId: string
  readonly jobName: string
  readonly srUuid: string
  /** XO's `copyRetention` */
  readonly retention: number
}

/** XO's `formatDateTime`: `YYYYMMDDTHH:MM:SSZ`. */
const xoDate = (d: Date): string =>
  d
    .toISOString()
    .replace(/[-]/g, '')
    .replace(/\.\d{3}Z$/, 'Z')
/** XO's `formatFilenameDate`: `YYYYMMDDTHHmmssZ`. */
const fileDate = (d: Date): string => xoDate(d).replaceAll(':', '')

/** Every backup key `resetVmOtherConfig` removes (all but `xo:backup:sr`). */
const RESET_KEYS = [
  KEYS.contentKey,
  KEYS.copyOf,
  KEYS.datetime,
  KEYS.deltaChainLength,
  KEYS.exported,
  KEYS.includeNonNbdQcow2Fix,
  KEYS.job,
  KEYS.schedule,
  KEYS.vm,
] as const

interface Disk {
  readonly ref: Ref<'VDI'>
  readonly vdi: VdiRecord
  readonly userdevice: string
}

async function disks(client: XapiClient, vm: Ref<'VM'>): Promise<Disk[]> {
  const out: Disk[] = []
  for (const vbdRef of (await client.getRecord('VM', vm)).VBDs) {
    const vbd = await client.getRecord('VBD', vbdRef)
    if (vbd.type !== 'Disk') continue
    out.push({ ref: vbd.VDI, vdi: await client.getRecord('VDI', vbd.VDI), userdevice: vbd.userdevice })
  }
  return out.sort((a, b) => Number(a.userdevice) - Number(b.userdevice))
}

async function setBoth(client: XapiClient, vm: Ref<'VM'>, entries: Record<string, string | null>, onDisks: boolean) {
  await setVmOtherConfig(client, vm, entries)
  if (onDisks) for (const d of await disks(client, vm)) await setVdiOtherConfig(client, d.ref, entries)
}

/** The newest exported snapshot of the job (era A: by the VM's keys; B, C: by the disks'). */
async function baseSnapshot(f: Fixture, job: XoJob, era: XoEra): Promise<[Ref<'VM'>, VmRecord] | undefined> {
  const vms = await f.source.getAllRecords('VM')
  const mine = [...vms].filter(([, v]) => {
    if (!v.is_a_snapshot || v.snapshot_of !== f.vmRef) return false
    const oc = v.other_config
    return oc[KEYS.job] === job.jobId && oc[KEYS.vm] === f.vmUuid && oc[KEYS.exported] !== undefined
  })
  const usable: [Ref<'VM'>, VmRecord][] = []
  for (const [ref, v] of mine) {
    if (era === 'A') usable.push([ref, v])
    else {
      const ds = await disks(f.source, ref)
      const ok = ds.every(
        d =>
          d.vdi.other_config[KEYS.exported] !== undefined &&
          d.vdi.other_config[KEYS.datetime] === v.other_config[KEYS.datetime] &&
          d.vdi.other_config[KEYS.copyOf] === undefined,
      )
      if (ok && ds.length > 0) usable.push([ref, v])
    }
  }
  return usable.sort(([, a], [, b]) => b.other_config[KEYS.datetime]!.localeCompare(a.other_config[KEYS.datetime]!))[0]
}

/** XO's `listReplicatedVms` (HEAD); eras A and B had no target snapshots. */
async function listReplicatedVms(target: XapiClient, job: XoJob, vmUuid: string, era: XoEra) {
  const all = await target.getAllRecords('VM')
  return [...all].filter(([, v]) => {
    const oc = v.other_config
    return (
      !v.is_a_template &&
      (era === 'C' || !v.is_a_snapshot) &&
      (oc[KEYS.job] === job.scheduleId || oc[KEYS.schedule] === job.scheduleId) &&
      oc[KEYS.sr] === job.srUuid &&
      oc[KEYS.vm] === vmUuid &&
      (v.is_a_snapshot || v.blocked_operations['start'] !== undefined)
    )
  })
}

/** Where a delta goes on the target: per source base disk uuid, the target disk, and the VM to update in place (C). */
interface TargetBase {
  readonly vdis: Map<string, Ref<'VDI'>>
  readonly inPlace?: Ref<'VM'>
}

/** XO's `checkBaseVdis` of the era: which target disks hold the base snapshot's disks. */
async function checkBaseVdis(f: Fixture, job: XoJob, era: XoEra, base: [Ref<'VM'>, VmRecord]): Promise<TargetBase> {
  const target = f.target
  const baseDisks = await disks(f.source, base[0])
  const vdis = new Map<string, Ref<'VDI'>>()
  const all = [...(await target.getAllRecords('VDI'))]
  const sr = await target.getByUuid('SR', job.srUuid)
  const onSr = all.filter(([, v]) => v.SR === sr && v.managed)
  if (era === 'A') {
    const replica = (await listReplicatedVms(target, job, f.vmUuid, 'A')).find(
      ([, v]) => v.other_config[KEYS.copyOf] === base[1].uuid,
    )
    if (replica === undefined) return { vdis }
    for (const d of await disks(target, replica[0])) {
      const of = d.vdi.other_config[KEYS.copyOf]
      if (of !== undefined && baseDisks.some(b => b.vdi.uuid === of)) vdis.set(of, d.ref)
    }
    return { vdis }
  }
  if (era === 'C') {
    // target snapshots of the job holding the base (no content keys on this first path)
    const candidates = new Map<string, [Ref<'VDI'>, VdiRecord]>()
    for (const b of baseDisks) {
      const hit = onSr.find(
        ([, v]) =>
          v.is_a_snapshot &&
          v.other_config[KEYS.job] === job.jobId &&
          v.other_config[KEYS.vm] === f.vmUuid &&
          v.other_config[KEYS.copyOf] === b.vdi.uuid,
      )
      if (hit !== undefined) candidates.set(b.vdi.uuid, hit)
    }
    if (candidates.size > 0) {
      let holder: Ref<'VM'> | undefined
      let unchanged = true
      for (const [uuid, [snapRef, snap]] of candidates) {
        const active = await target.getRecord('VDI', snap.snapshot_of)
        const vbds = await Promise.all(active.VBDs.map(r => target.getRecord('VBD', r)))
        const vm = vbds.length === 1 ? await target.getRecord('VM', vbds[0]!.VM) : undefined
        const same =
          vm !== undefined &&
          vm.power_state === 'Halted' &&
          (await rawSha256(target, snap.snapshot_of)) === (await rawSha256(target, snapRef))
        if (same) {
          vdis.set(uuid, snap.snapshot_of)
          holder = vbds[0]!.VM
        } else {
          vdis.set(uuid, snapRef)
          unchanged = false
        }
      }
      if (!unchanged) {
        // some disk changed: chain every disk on the snapshots, new VM
        for (const [uuid, [snapRef]] of candidates) vdis.set(uuid, snapRef)
        return { vdis }
      }
      return holder === undefined ? { vdis } : { vdis, inPlace: holder }
    }
  }
  // era B, and C's legacy fallback: active disks whose xo:copy_of names the base disk
  for (const [ref, v] of onSr) {
    const of = v.other_config[KEYS.copyOf]
    if (!v.is_a_snapshot && of !== undefined && baseDisks.some(b => b.vdi.uuid === of)) vdis.set(of, ref)
  }
  return { vdis }
}

/**
 * One run of XO's incremental replication of the fixture's VM to `job.srUuid`, as era `era`
 * makes it, at `at`, with XO's retention (copyRetention on the target, snapshotRetention 0 on the
 * source). Resolves to full or delta.
 */
export async function xoRun(f: Fixture, job: XoJob, era: XoEra, at: Date): Promise<'full' | 'delta'> {
  const { source, target } = f
  const base = await baseSnapshot(f, job, era)
  const found = base === undefined ? undefined : await checkBaseVdis(f, job, era, base)
  const baseDisks = base === undefined ? [] : await disks(source, base[0])
  const liveDisks = await disks(source, f.vmRef)

  // the snapshot and its keys
  const snap = await snapshotVm(source, f.vmRef, 'xo-backup-temp-snapshot-name')
  // XO's VM_snapshot: XAPI marks snapshots as templates, XO unmarks them
  await setVmIsATemplate(source, snap, false)
  const vm = await source.getRecord('VM', f.vmRef)
  const datetime = xoDate(at)
  const keys: Record<string, string> = {
    [KEYS.datetime]: datetime,
    [KEYS.job]: job.jobId,
    [KEYS.schedule]: job.scheduleId,
    [KEYS.vm]: f.vmUuid,
    ...(era === 'C' ? { [KEYS.includeNonNbdQcow2Fix]: 'true' } : {}),
  }
  await setBoth(source, snap, keys, era !== 'A')
  const snapDisks = await disks(source, snap)
  if (era === 'C') for (const d of snapDisks) await setVdiOtherConfig(source, d.ref, { [KEYS.contentKey]: d.vdi.uuid })
  await setVmNameLabel(source, snap, `[XO Backup ${job.jobName}] ${vm.name_label}`)
  const snapRecord = await source.getRecord('VM', snap)

  // per disk: its base on both sides
  const plan = snapDisks.map(d => {
    const live = liveDisks.find(l => l.ref === d.vdi.snapshot_of)
    const b = baseDisks.find(x => x.vdi.snapshot_of === live?.ref)
    const tgt = b === undefined ? undefined : found?.vdis.get(b.vdi.uuid)
    return { disk: d, base: b !== undefined && tgt !== undefined ? { source: b.ref, target: tgt } : undefined }
  })
  const isFull = plan.some(p => p.base === undefined)
  const inPlace = isFull ? undefined : found?.inPlace

  // XO's prepare: the entries retention will delete after the transfer
  const entries = await listReplicatedVms(target, job, f.vmUuid, era)
  const holders = new Set(entries.filter(([, v]) => v.is_a_snapshot).map(([, v]) => v.snapshot_of))
  const counted = entries
    .filter(([ref, v]) => v.is_a_snapshot || !holders.has(ref))
    .sort(([, a], [, b]) => (xoDatetime(a) < xoDatetime(b) ? -1 : 1))
  const old = counted.slice(0, Math.max(0, counted.length - (job.retention - 1)))

  // the replica: the same VM updated in place (C), or a new one
  const sr = await target.getByUuid('SR', job.srUuid)
  const vmKeys = {
    ...(era === 'A' ? snapRecord.other_config : {}),
    [KEYS.copyOf]: snapRecord.uuid,
    [KEYS.job]: job.jobId,
    [KEYS.schedule]: job.scheduleId,
    [KEYS.sr]: job.srUuid,
    [KEYS.datetime]: PLACEHOLDER_DATETIME,
  }
  let replica: Ref<'VM'>
  if (inPlace !== undefined) {
    replica = inPlace
    await setVmOtherConfig(target, replica, vmKeys)
  } else {
    replica = await createVm(target, {
      ...VM_CREATE_RECORD,
      name_label: `[Importing…] ${snapRecord.name_label}`,
      name_description: snapRecord.name_description,
      other_config: vmKeys,
      tags: [REPLICA_TAG],
    })
  }
  for (const op of ['start', 'start_on']) await blockOperation(target, replica, op, 'Importing…')
  for (const p of plan) {
    const diskKeys: Record<string, string> = {
      [KEYS.copyOf]: p.disk.vdi.uuid,
      ...(era === 'A'
        ? {}
        : { [KEYS.job]: job.jobId, [KEYS.schedule]: job.scheduleId, [KEYS.sr]: job.srUuid, [KEYS.vm]: f.vmUuid }),
      ...(era === 'C' ? { [KEYS.contentKey]: p.disk.vdi.uuid } : {}),
    }
    let vdi: Ref<'VDI'>
    if (inPlace !== undefined && p.base !== undefined) vdi = p.base.target
    else if (p.base !== undefined) {
      vdi = await cloneVdi(target, p.base.target)
      await createVbd(target, {
        VM: replica,
        VDI: vdi,
        userdevice: p.disk.userdevice,
        bootable: p.disk.userdevice === '0',
      })
    } else {
      vdi = await createVdi(target, {
        SR: sr,
        virtual_size: p.disk.vdi.virtual_size,
        name_label: p.disk.vdi.name_label,
        other_config: diskKeys,
      })
      await createVbd(target, {
        VM: replica,
        VDI: vdi,
        userdevice: p.disk.userdevice,
        bootable: p.disk.userdevice === '0',
      })
    }
    await setVdiOtherConfig(target, vdi, diskKeys)
    await transferDisk({
      source,
      vdi: p.disk.ref,
      ...(p.base === undefined ? {} : { base: p.base.source }),
      target,
      targetVdi: vdi,
    })
  }
  // the transfer is complete
  const replicaName = era === 'C' ? snapRecord.name_label : `${vm.name_label} - ${job.jobName} - (${fileDate(at)})`
  await setVmNameLabel(target, replica, replicaName)
  for (const op of ['start', 'start_on']) await blockOperation(target, replica, op, START_BLOCKED_MESSAGE)
  await setBoth(
    target,
    replica,
    {
      [KEYS.sr]: job.srUuid,
      [KEYS.datetime]: datetime,
      [KEYS.job]: job.jobId,
      [KEYS.schedule]: job.scheduleId,
      [KEYS.vm]: f.vmUuid,
      ...(era === 'C' ? { [KEYS.includeNonNbdQcow2Fix]: 'true' } : {}),
    },
    era !== 'A',
  )
  if (era === 'A') await addTag(target, replica, REPLICA_TAG)
  if (era === 'C') {
    await setVmNameDescription(target, replica, ` -- last replication: ${fileDate(at)}`)
    const targetSnapshot = await snapshotVm(
      target,
      replica,
      `${vm.name_label} - ${job.jobName} / schedule ${fileDate(at)}`,
    )
    await setVmIsATemplate(target, targetSnapshot, false)
    await setBoth(target, replica, Object.fromEntries(RESET_KEYS.map(k => [k, null])), true)
  }

  // the source snapshot is the next base; older ones go (snapshotRetention 0)
  const chain = isFull ? 0 : Number(base?.[1].other_config[KEYS.deltaChainLength] ?? 0) + 1
  await setBoth(source, snap, { [KEYS.deltaChainLength]: String(chain) }, era !== 'A')
  await setBoth(source, snap, { [KEYS.exported]: 'true' }, era !== 'A')
  for (const [ref, v] of await source.getAllRecords('VM'))
    if (v.is_a_snapshot && v.snapshot_of === f.vmRef && v.other_config[KEYS.job] === job.jobId && ref !== snap)
      await destroyVmAndDisks(source, ref)
  // retention on the target (XO's VM_destroy: the VM, and its disks nothing else uses)
  for (const [ref] of old) await destroyVmAndDisks(target, ref)
  return isFull ? 'full' : 'delta'
}

/**
 * An era-A run of XO that died during its transfer: the source snapshot keyed on the VM only, never
 * exported; on the SR the replica VM with the snapshot's keys and `xo:copy_of` (a real datetime,
 * no `xo:backup:sr`: era A wrote it at the end), its start blocked "Importing…", and one new disk
 * half written.
 */
export async function xoInterruptedEraA(f: Fixture, job: XoJob, at: Date): Promise<Ref<'VM'>> {
  const { source, target } = f
  const snap = await snapshotVm(source, f.vmRef, 'xo-backup-temp-snapshot-name')
  await setVmIsATemplate(source, snap, false)
  await setVmOtherConfig(source, snap, {
    [KEYS.datetime]: xoDate(at),
    [KEYS.job]: job.jobId,
    [KEYS.schedule]: job.scheduleId,
    [KEYS.vm]: f.vmUuid,
  })
  const snapRecord = await source.getRecord('VM', snap)
  const replica = await createVm(target, {
    ...VM_CREATE_RECORD,
    name_label: `[Importing…] ${snapRecord.name_label}`,
    other_config: { ...snapRecord.other_config, [KEYS.copyOf]: snapRecord.uuid },
  })
  for (const op of ['start', 'start_on']) await blockOperation(target, replica, op, 'Importing…')
  const [first] = await disks(source, snap)
  const vdi = await createVdi(target, {
    SR: await target.getByUuid('SR', job.srUuid),
    virtual_size: first!.vdi.virtual_size,
    name_label: first!.vdi.name_label,
    other_config: { [KEYS.copyOf]: first!.vdi.uuid },
  })
  await createVbd(target, { VM: replica, VDI: vdi, userdevice: first!.userdevice, bootable: true })
  return replica
}

/** XO's sort key: the datetime key, else the name's trailing `(…)`. */
const xoDatetime = (v: VmRecord): string => v.other_config[KEYS.datetime] ?? v.name_label.slice(-17, -1)

/**
 * The copy `xo-cr-seed` 1.0.2 keys after a by-hand seed: a manual snapshot, a VM on the target SR
 * with its disks imported full, then VM-level keys on the snapshot (`snapshot_time` as datetime,
 * exported) and on the copy (name, keys, `xo:backup:sr`, `xo:copy_of`, start blocked), and
 * `xo:copy_of` on the copy's disks paired by userdevice.
 */
export async function xoCrSeedCopy(f: Fixture, job: XoJob): Promise<void> {
  const { source, target } = f
  const snap = await snapshotVm(source, f.vmRef, 'seed snapshot')
  const snapRecord = await source.getRecord('VM', snap)
  const sr = await target.getByUuid('SR', job.srUuid)
  const copy = await createVm(target, { ...VM_CREATE_RECORD, name_label: `${snapRecord.name_label} (imported)` })
  const snapDisks = await disks(source, snap)
  for (const d of snapDisks) {
    const vdi = await createVdi(target, { SR: sr, virtual_size: d.vdi.virtual_size, name_label: d.vdi.name_label })
    await createVbd(target, { VM: copy, VDI: vdi, userdevice: d.userdevice, bootable: d.userdevice === '0' })
    await transferDisk({ source, vdi: d.ref, target, targetVdi: vdi })
  }
  const vm = await source.getRecord('VM', f.vmRef)
  const datetime = snapRecord.snapshot_time
  const keys = {
    [KEYS.datetime]: datetime,
    [KEYS.job]: job.jobId,
    [KEYS.schedule]: job.scheduleId,
    [KEYS.vm]: f.vmUuid,
  }
  await setVmOtherConfig(source, snap, { ...keys, [KEYS.exported]: 'true' })
  await setVmNameLabel(target, copy, `${vm.name_label} (${datetime})`)
  await setVmOtherConfig(target, copy, { ...keys, [KEYS.sr]: job.srUuid, [KEYS.copyOf]: snapRecord.uuid })
  for (const op of ['start', 'start_on']) await blockOperation(target, copy, op, START_BLOCKED_MESSAGE)
  const copyDisks = await disks(target, copy)
  for (const d of snapDisks) {
    const twin = copyDisks.find(c => c.userdevice === d.userdevice)
    if (twin !== undefined) await setVdiOtherConfig(target, twin.ref, { [KEYS.copyOf]: d.vdi.uuid })
  }
}

/** What a job has on one SR, and what on it belongs to nobody. */
export interface SrAudit {
  /** restore points: keyed target snapshots, and keyed replica VMs that have none */
  readonly copies: number
  /** VMs and snapshots with a disk on the SR that no key or snapshot link ties to a job */
  readonly strandedVms: readonly string[]
  /** disks on the SR attached to no VM */
  readonly strandedVdis: readonly string[]
  /** disks on the SR still claiming XO's qcow2 fix without the VM claiming it */
  readonly staleFixFlags: readonly string[]
}

export async function auditSr(target: XapiClient, srUuid: string, jobId: string): Promise<SrAudit> {
  const sr = await target.getByUuid('SR', srUuid)
  const vms = await target.getAllRecords('VM')
  const vbds = await target.getAllRecords('VBD')
  const vdis = await target.getAllRecords('VDI')
  const keyed = (v: VmRecord): boolean => v.other_config[KEYS.job] === jobId && v.other_config[KEYS.sr] === srUuid
  const holders = new Set([...vms.values()].filter(v => v.is_a_snapshot && keyed(v)).map(v => v.snapshot_of))
  let copies = 0
  const strandedVms: string[] = []
  const staleFixFlags: string[] = []
  for (const [ref, v] of vms) {
    if (v.is_control_domain) continue
    const onSr = v.VBDs.some(b => {
      const vbd = vbds.get(b)
      return vbd !== undefined && vdis.get(vbd.VDI)?.SR === sr
    })
    if (!onSr) continue
    if (v.is_a_snapshot ? keyed(v) : keyed(v) && !holders.has(ref)) copies++
    if (!keyed(v) && !holders.has(ref))
      strandedVms.push(`${v.name_label} (${v.uuid}) ${JSON.stringify(v.other_config)}`)
    for (const b of v.VBDs) {
      const vdi = vdis.get(vbds.get(b)?.VDI ?? ('' as Ref<'VDI'>))
      if (
        vdi !== undefined &&
        vdi.other_config[KEYS.includeNonNbdQcow2Fix] === 'true' &&
        v.other_config[KEYS.includeNonNbdQcow2Fix] !== 'true' &&
        !v.is_a_snapshot &&
        !holders.has(ref)
      )
        staleFixFlags.push(`${vdi.name_label} of ${v.name_label}`)
    }
  }
  const strandedVdis = [...vdis.values()]
    .filter(v => v.SR === sr && v.managed && v.VBDs.length === 0)
    .map(v => `${v.name_label} (${v.uuid})`)
  return { copies, strandedVms, strandedVdis, staleFixFlags }
}

/** The disks of the newest replica (or target snapshot) of the job hash like the source VM's. */
export async function newestCopyMatchesSource(f: Fixture, jobId: string, srUuid: string): Promise<boolean> {
  const vms = [...(await f.target.getAllRecords('VM'))].filter(
    ([, v]) => v.other_config[KEYS.job] === jobId && v.other_config[KEYS.sr] === srUuid && !v.is_a_template,
  )
  const newest = vms.sort(([, a], [, b]) => xoDatetime(b).localeCompare(xoDatetime(a)))[0]
  if (newest === undefined) return false
  const snaps = [...(await f.source.getAllRecords('VM'))].filter(
    ([, v]) => v.is_a_snapshot && v.snapshot_of === f.vmRef && v.other_config[KEYS.job] === jobId,
  )
  const snap = snaps.sort(([, a], [, b]) => xoDatetime(b).localeCompare(xoDatetime(a)))[0]
  if (snap === undefined) return false
  const a = await Promise.all((await disksOf(f.target, newest[0])).map(d => rawSha256(f.target, d)))
  const b = await Promise.all((await disksOf(f.source, snap[0])).map(d => rawSha256(f.source, d)))
  return a.length > 0 && JSON.stringify(a) === JSON.stringify(b)
}
