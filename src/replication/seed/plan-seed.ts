/**
 * Deciding what a seed writes, as a pure function of the records of both pools: every check of
 * the request (`seed-checks.ts`, `seed-claims.ts`: refusals are `ValidationError`s, nothing is
 * written) and the exact metadata a completed era-B pass would have left on the source snapshot,
 * the replica VM and their disks (`seed-changes.ts`). Applying the changes is `apply-seed.ts`.
 */
import { parseXapiDateTime, replicaName, type PassIdentity } from '../metadata.js'
import { checkSeed, type SeedWarning } from './seed-checks.js'
import { checkSeedClaims } from './seed-claims.js'
import { seedChanges, seedDatetime, type SeedChange } from './seed-changes.js'
import { seedObject, type SeedDiskPair, type SeedObject, type SeedRecords, type SeedRequest } from './seed-records.js'

export { checkSeedIds, type SeedWarning } from './seed-checks.js'
export type { SeedChange } from './seed-changes.js'
export type {
  SeedDiskPair,
  SeedObject,
  SeedRecords,
  SeedRequest,
  SeedSr,
  SeedVbd,
  SeedVdi,
  SeedVm,
} from './seed-records.js'
export { SeedRefusal, type SeedRefusalCode } from './seed-refusal.js'

export interface SeedPlan {
  readonly identity: PassIdentity
  /** `xo:backup:datetime` written on both sides */
  readonly datetime: string
  readonly snapshot: SeedObject
  readonly sourceVm: SeedObject
  readonly targetVm: SeedObject
  readonly sr: SeedObject
  readonly replicaName: string
  readonly pairs: readonly SeedDiskPair[]
  /** empty when the seed is already in place */
  readonly changes: readonly SeedChange[]
  readonly warnings: readonly SeedWarning[]
}

/**
 * Checks a seed request against both pools and computes what to write. `samePool` says that
 * `source` and `target` are the records of one pool. `now` is used only when the snapshot has
 * no usable `snapshot_time`.
 * @throws SeedRefusal with a `SEED_*` code
 */
export function planSeed(
  request: SeedRequest,
  source: SeedRecords,
  target: SeedRecords,
  options: { readonly samePool: boolean; readonly now?: Date },
): SeedPlan {
  const { job } = request
  const { subject, warnings } = checkSeed(request, source, target, options.samePool)
  checkSeedClaims(subject, request, target)
  const { snapshot, vm, sr } = subject
  const identity: PassIdentity = { jobId: job.id, scheduleId: request.scheduleId, vmUuid: vm.record.uuid }
  const datetime = seedDatetime(snapshot.record, job.id, options.now)
  const name = replicaName(vm.record.name_label, job.name ?? job.id, parseXapiDateTime(datetime) ?? new Date(0))
  return {
    identity,
    datetime,
    snapshot: seedObject(snapshot.ref, snapshot.record),
    sourceVm: seedObject(vm.ref, vm.record),
    targetVm: seedObject(subject.target.ref, subject.target.record),
    sr: seedObject(sr.ref, sr.record),
    replicaName: name,
    pairs: subject.pairs,
    changes: seedChanges(subject, { identity, datetime, name, jobName: job.name }),
    warnings,
  }
}
