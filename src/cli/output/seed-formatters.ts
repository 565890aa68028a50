import type { ChalkInstance } from 'chalk'
import { formatBytes } from '../../jobs/rate.js'
import { importingName } from '../../replication/metadata.js'
import type { SeedChange, SeedPlan } from '../../replication/seed/plan-seed.js'
import type { SeedCommandEvent } from './events.js'
import type { FormattersOf } from './formatter.js'

/** A file holds one disk (VHD) or the whole VM (XVA, userdevice `all`). */
const what = (userdevice: string): string => (userdevice === 'all' ? 'the VM' : `disk ${userdevice}`)

/** `12.0 MiB of 16.0 MiB (75 %)`, or the bytes alone while the total is unknown. */
function amount(bytes: number, total: number | undefined): string {
  if (total === undefined) return formatBytes(bytes)
  return `${formatBytes(bytes)} of ${formatBytes(total)} (${Math.floor((Math.min(bytes, total) / Math.max(1, total)) * 100)} %)`
}

/** A line per 10 % of a known total, else per GiB. */
function decile(bytes: number, total: number | undefined): number {
  return total === undefined
    ? -1 - Math.floor(bytes / 1024 ** 3)
    : Math.floor((Math.min(bytes, total) / Math.max(1, total)) * 10)
}

/**
 * The copy is named by the name it gets (the replica's); the name it has now is worth saying
 * only when it is the user's own — a guided import's is its temporary `[Importing…]` one.
 */
function seedSubject(plan: SeedPlan): string {
  const now = plan.targetVm.name
  const renamed = now === plan.replicaName || now === importingName(plan.replicaName) ? '' : `, now named "${now}"`
  return `${plan.replicaName} (${plan.targetVm.uuid}${renamed})`
}

function describeChange(change: SeedChange, style: ChalkInstance): string[] {
  const what = `${change.side} ${change.cls === 'VM' ? (change.side === 'source' ? 'snapshot' : 'VM') : 'disk'} ${change.object.uuid}`
  const lines = [`  ${style.bold(what)}`]
  for (const [k, v] of Object.entries(change.otherConfig)) lines.push(`    other_config ${k} = ${v}`)
  if (change.nameLabel !== undefined) lines.push(`    name_label = ${change.nameLabel}`)
  for (const [op, reason] of Object.entries(change.blockedOperations ?? {}))
    lines.push(`    blocked_operations ${op} = ${reason}`)
  for (const tag of change.addTags ?? []) lines.push(`    tag + ${tag}`)
  if (change.clearIsATemplate === true) lines.push('    is_a_template = false')
  if (change.clearHa === true) lines.push('    ha_restart_priority = "" (HA off)')
  return lines
}

/** `xen-cr seed` and `xen-cr-seed`. */
export const seedFormatters: FormattersOf<SeedCommandEvent> = {
  'seed-plan': {
    class: 'result',
    format: ({ plan, dryRun }, style) => [
      `seed of ${seedSubject(plan)} on SR ${plan.sr.name} as the copy of snapshot ${plan.snapshot.name} (${plan.snapshot.uuid}) of VM ${plan.sourceVm.name}`,
      `job ${plan.identity.jobId} schedule ${plan.identity.scheduleId}, datetime ${plan.datetime}`,
      ...plan.pairs.map(
        p => `  disk ${p.userdevice}: ${p.source.uuid} → ${p.target.uuid} (${formatBytes(p.virtualSize)})`,
      ),
      plan.changes.length === 0
        ? 'already seeded: nothing to write'
        : dryRun
          ? style.yellow(`dry run: would write ${plan.changes.length} object(s):`)
          : `writing ${plan.changes.length} object(s):`,
      ...plan.changes.flatMap(c => describeChange(c, style)),
    ],
  },
  'seed-verify-progress': {
    class: 'progress',
    format: e => [`verifying disk ${e.userdevice} (${e.side}): ${amount(e.bytes, e.total)} compared`],
    live: {
      key: e => `verify/${e.userdevice}/${e.side}`,
      milestone: e => decile(e.bytes, e.total),
      transfer: e => ({ label: `verify disk ${e.userdevice} ${e.side}`, bytes: e.bytes, total: e.total }),
    },
  },
  'seed-verified': {
    class: 'info',
    live: { key: () => 'verify', ends: true },
    format: (e, style) =>
      e.disks.map(d => {
        const how = d.mode === 'full' ? `sha256 ${d.sourceSha256 ?? ''}` : `${d.blocks?.length ?? 0} sampled blocks`
        return d.equal
          ? `${style.green('✓')} disk ${d.userdevice}: content equal (${how})`
          : `${style.red('✗')} disk ${d.userdevice}: content differs${d.firstDifferentBlock === undefined ? '' : ` at block ${d.firstDifferentBlock}`}`
      }),
  },
  'seed-snapshot': {
    class: 'info',
    format: e => [`snapshot ${e.snapshot.name} (${e.snapshot.uuid}) of VM ${e.vm.name} taken with the job's metadata`],
  },
  'seed-file-progress': {
    class: 'progress',
    format: e => [
      `${e.direction === 'export' ? 'exporting' : 'importing'} ${what(e.userdevice)} ${e.file}: ${amount(e.bytes, e.total)}`,
    ],
    live: {
      key: e => `${e.direction}/${e.file}`,
      milestone: e => decile(e.bytes, e.total),
      transfer: e => ({
        label: `${e.direction === 'export' ? 'export' : 'import'} ${what(e.userdevice)}`,
        bytes: e.bytes,
        ...(e.total === undefined ? {} : { total: e.total }),
      }),
    },
  },
  'seed-file-done': {
    class: 'info',
    format: (e, style) => [
      `${style.green('✓')} ${e.direction === 'export' ? 'exported' : 'imported'} ${what(e.userdevice)} ${e.file}: ${formatBytes(e.bytes)}${e.sha256 === undefined ? '' : ` sha256 ${e.sha256}`}`,
    ],
    live: { key: e => `${e.direction}/${e.file}`, ends: true },
  },
  'seed-exported': {
    class: 'outcome',
    closesProgress: true,
    format: e => [
      `seed written to ${e.dir} (${formatBytes(e.bytes)}); manifest ${e.manifest}`,
      `snapshot ${e.snapshot.name} (${e.snapshot.uuid}): do not delete it, and do not run the job until the seed is imported`,
      `next: carry the folder to the target site, then xen-cr seed import --job <job> --from <folder> --sr <sr uuid>`,
    ],
  },
  'seed-done': {
    class: 'outcome',
    closesProgress: true,
    format: e => [
      e.written
        ? `seeded: ${e.replica.name} (${e.replica.uuid}) is the base of job ${e.job}; its next run sends only the blocks changed since the snapshot`
        : `${e.replica.name} (${e.replica.uuid}) was already seeded for job ${e.job}; nothing written`,
    ],
  },
}
