/**
 * What `list --metrics-file` writes: per job and VM, the age of the newest complete replica and
 * whether it is within the limit `list --check` applies; per job its RPO, that limit, whether it is
 * enabled and whether it could be read. Ages are also given as timestamps, so an alert rule can
 * compute `time() - xen_cr_replica_timestamp_seconds` and stay right when the file goes stale.
 */
import { Gauge, Registry } from 'prom-client'
import type { XenCrError } from '../../errors.js'
import type { JobListing } from '../../replication/list.js'
import { checkRpo, type RpoLimits } from '../../replication/rpo-check.js'

/** One job of a `list` run: its listing, or why it could not be read. */
export type ListedJob =
  | { readonly job: JobListing['job']; readonly listing: JobListing }
  | { readonly job: JobListing['job']; readonly error: XenCrError }

/**
 * Label names. Not `job`: Prometheus attaches its own `job` label (the scrape job) to every
 * series, and an exported `job` would be renamed `exported_job`.
 */
const JOB_LABELS = ['job_name', 'job_id'] as const
const VM_LABELS = ['job_name', 'job_id', 'vm', 'vm_uuid'] as const

/** The text of the metrics file of a `list` run at `now`. */
export async function listMetricsText(jobs: readonly ListedJob[], limits: RpoLimits, now: Date): Promise<string> {
  const registry = new Registry()
  const registers = [registry]
  const vmGauge = (name: string, help: string) => new Gauge({ name, help, labelNames: VM_LABELS, registers })
  const jobGauge = (name: string, help: string) => new Gauge({ name, help, labelNames: JOB_LABELS, registers })
  const age = vmGauge(
    'xen_cr_replica_age_seconds',
    'Age of the newest complete replica of the VM, on the SR where it is oldest (absent: none on some SR).',
  )
  const stamp = vmGauge(
    'xen_cr_replica_timestamp_seconds',
    'Datetime (Unix seconds) of the newest complete replica of the VM, on the SR where it is oldest.',
  )
  const count = vmGauge('xen_cr_replicas', 'Complete replicas of the VM, all SRs of the job.')
  const rpoOk = vmGauge(
    'xen_cr_rpo_ok',
    '1 when the VM has a complete replica on every SR within the limit (as list --check judges), else 0.',
  )
  const rpo = jobGauge('xen_cr_rpo_seconds', "The job's RPO: its shortest schedule period.")
  const limit = jobGauge(
    'xen_cr_rpo_limit_seconds',
    'The age beyond which a replica is late: the RPO (or --max-age) plus the tolerance.',
  )
  const enabled = jobGauge('xen_cr_job_enabled', '1 when the job is enabled (run --due runs it), else 0.')
  const readable = jobGauge(
    'xen_cr_job_listed',
    "1 when the job's replicas could be read from its target pool; 0: nothing is known of its VMs.",
  )
  const written = new Gauge({
    name: 'xen_cr_list_timestamp_seconds',
    help: 'When xen-cr list wrote this file (Unix seconds).',
    registers,
  })

  const nowSeconds = now.getTime() / 1000
  for (const entry of jobs) {
    const jobLabels = { job_name: entry.job.name, job_id: entry.job.id }
    enabled.set(jobLabels, entry.job.enabled ? 1 : 0)
    if (!('listing' in entry)) {
      readable.set(jobLabels, 0)
      continue
    }
    readable.set(jobLabels, 1)
    const check = checkRpo(entry.listing, limits)
    rpo.set(jobLabels, check.rpoMs / 1000)
    limit.set(jobLabels, (check.maxAgeMs + check.toleranceMs) / 1000)
    entry.listing.vms.forEach((vm, index) => {
      const labels = { ...jobLabels, vm: vm.vm.name, vm_uuid: vm.vm.uuid }
      count.set(labels, vm.replicas.filter(r => r.complete).length)
      rpoOk.set(labels, check.vms[index]?.status === 'ok' ? 1 : 0)
      if (vm.ageMs === undefined) return
      age.set(labels, vm.ageMs / 1000)
      stamp.set(labels, (now.getTime() - vm.ageMs) / 1000)
    })
  }
  written.set(nowSeconds)
  return registry.metrics()
}
