/**
 * `list --check`: whether each VM of a job has a complete replica young enough, as a pure
 * function of a listing. The limit is the RPO (the job's shortest schedule period) or an explicit
 * maximum age, plus a tolerance that absorbs the few seconds to minutes between a cron tick and the
 * snapshot it takes (the replica's datetime is the snapshot's).
 */
import { intervalGraceMs } from '../jobs/schedule.js'
import type { JobListing, VmStatus } from './list.js'

export interface RpoLimits {
  /** overrides the RPO */
  readonly maxAgeMs?: number
  /** default: {@link defaultToleranceMs} of the maximum age */
  readonly toleranceMs?: number
}

export interface VmRpoVerdict {
  readonly vm: { readonly uuid: string; readonly name: string }
  /** `never`: some SR of the job holds no complete replica of the VM */
  readonly status: VmStatus
  /** age of the newest complete replica on the SR where it is oldest */
  readonly ageMs?: number
  /** the newest complete replica on any SR, to name it in a report */
  readonly newest?: {
    readonly uuid: string
    readonly name: string
    readonly datetime: string
    readonly srName: string
  }
}

export interface JobRpoCheck {
  readonly job: JobListing['job']
  readonly rpoMs: number
  /** the RPO, or the `--max-age` that overrides it */
  readonly maxAgeMs: number
  readonly toleranceMs: number
  readonly vms: readonly VmRpoVerdict[]
}

/**
 * The tolerance used when none is given: a tenth of the maximum age, at most 5 minutes (1h → 5m,
 * 15m → 1m30s, 24h → 5m). It is the grace `run --due` gives an interval schedule, so a job that
 * `run --due` does not yet consider due is never reported late.
 */
export function defaultToleranceMs(maxAgeMs: number): number {
  return intervalGraceMs(maxAgeMs)
}

/** Judges every VM of `listing` against `maxAge + tolerance`. */
export function checkRpo(listing: JobListing, limits: RpoLimits = {}): JobRpoCheck {
  const maxAgeMs = limits.maxAgeMs ?? listing.rpoMs
  const toleranceMs = limits.toleranceMs ?? defaultToleranceMs(maxAgeMs)
  const vms = listing.vms.map((vm): VmRpoVerdict => {
    const newest = vm.replicas.find(r => r.complete && r.datetime !== undefined)
    const status: VmStatus = vm.ageMs === undefined ? 'never' : vm.ageMs <= maxAgeMs + toleranceMs ? 'ok' : 'late'
    return {
      vm: vm.vm,
      status,
      ...(vm.ageMs === undefined ? {} : { ageMs: vm.ageMs }),
      ...(newest?.datetime === undefined
        ? {}
        : { newest: { uuid: newest.uuid, name: newest.name, datetime: newest.datetime, srName: newest.srName } }),
    }
  })
  return { job: listing.job, rpoMs: listing.rpoMs, maxAgeMs, toleranceMs, vms }
}
