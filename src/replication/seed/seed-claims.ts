/**
 * The last checks of a seed: nothing it would write on may already belong to another job,
 * schedule, snapshot or copy, and the job must not already have a copy of the snapshot there.
 */
import { KEYS } from '../metadata.js'
import { seedJobLabel, type SeedSubject } from './seed-checks.js'
import type { SeedRecords, SeedRequest } from './seed-records.js'
import { SeedRefusal } from './seed-refusal.js'

type Strings = Readonly<Record<string, string>>

/** A key this request would write, already set to something else. */
function conflicting(oc: Strings, expected: Strings): string | undefined {
  for (const [k, v] of Object.entries(expected)) {
    const current = oc[k]
    if (current !== undefined && current !== v) return `${k}=${current}`
  }
  return undefined
}

/** @throws SeedRefusal `SEED_SNAPSHOT_CLAIMED`, `SEED_TARGET_CLAIMED` or `SEED_ALREADY_REPLICATED` */
export function checkSeedClaims(s: SeedSubject, request: SeedRequest, target: SeedRecords): void {
  const ownKeys = { [KEYS.job]: request.job.id, [KEYS.schedule]: request.scheduleId }
  const snap = s.snapshot.record
  const snapConflict =
    conflicting(snap.other_config, ownKeys) ??
    s.srcDisks.map(d => conflicting(d.vdi.other_config, ownKeys)).find(c => c !== undefined)
  if (snapConflict !== undefined) {
    throw new SeedRefusal(
      'SEED_SNAPSHOT_CLAIMED',
      `snapshot ${snap.uuid} already belongs to another job or schedule (${snapConflict}); take a new snapshot for this job`,
    )
  }
  const tgt = s.target.record
  const tgtConflict = conflicting(tgt.other_config, { ...ownKeys, [KEYS.copyOf]: snap.uuid })
  if (tgtConflict !== undefined) {
    throw new SeedRefusal(
      'SEED_TARGET_CLAIMED',
      `target VM ${tgt.uuid} is already a copy for something else (${tgtConflict}); import a fresh copy`,
    )
  }
  for (const p of s.pairs) {
    const t = s.tgtDisks.find(d => d.ref === p.target.ref)!
    const c = conflicting(t.vdi.other_config, { ...ownKeys, [KEYS.copyOf]: p.source.uuid })
    if (c !== undefined)
      throw new SeedRefusal(
        'SEED_TARGET_CLAIMED',
        `target disk ${p.target.uuid} is already a copy of something else (${c}); import a fresh copy`,
      )
    const others = t.vdi.VBDs.map(v => target.vbds.get(v)?.VM).filter(
      (vm): vm is string => vm !== undefined && vm !== s.target.ref,
    )
    if (others.length > 0) {
      const names = others.map(r => target.vms.get(r)?.uuid ?? r).join(', ')
      throw new SeedRefusal(
        'SEED_TARGET_CLAIMED',
        `target disk ${p.target.uuid} is also attached to VM ${names}; a replica's disks must be its own`,
      )
    }
  }
  const sr = s.sr.record
  for (const [ref, other] of target.vms) {
    if (ref === s.target.ref) continue
    const oc = other.other_config
    if (oc[KEYS.copyOf] === snap.uuid && oc[KEYS.job] === request.job.id && oc[KEYS.sr] === sr.uuid) {
      throw new SeedRefusal(
        'SEED_ALREADY_REPLICATED',
        `VM ${other.name_label} (${other.uuid}) on SR ${sr.name_label} is already the copy of snapshot ${snap.uuid} for ${seedJobLabel(request)}; the job needs no seed there`,
      )
    }
  }
}
