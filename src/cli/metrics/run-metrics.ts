/**
 * What `run --metrics-file` writes: per job and VM, the outcome of its last pass (success, when,
 * how long, bytes sent, full or delta) and when it last succeeded; per job, whether its last run
 * went through. `run --due` runs only the jobs that are due, so the file carries over what it
 * held for the others; a job no longer in the job store drops out.
 */
import { Gauge, Registry } from 'prom-client'
import type { VmResult } from '../../replication/events.js'
import type { MetricSample } from './metrics-file.js'

/** One job's run in this invocation. */
export interface JobRun {
  readonly job: { readonly id: string; readonly name: string }
  /** the pass ran and every VM succeeded */
  readonly ok: boolean
  readonly at: Date
  /** each VM's result and when it ended */
  readonly results: readonly { readonly result: VmResult; readonly endedAt: Date }[]
  /**
   * `all`: the pass covered the whole job, so VMs it did not report are no longer the job's and
   * drop out; otherwise (a `--vm` run, or a pass that stopped early) the others are kept.
   */
  readonly complete: boolean
}

const JOB_LABELS = ['job_name', 'job_id'] as const
const VM_LABELS = ['job_name', 'job_id', 'vm', 'vm_uuid'] as const

const VM_METRICS = {
  xen_cr_pass_success: "1 when the VM's last pass succeeded, 0 when it failed.",
  xen_cr_pass_timestamp_seconds: "When the VM's last pass ended (Unix seconds).",
  xen_cr_pass_duration_seconds: "Duration of the VM's last pass.",
  xen_cr_pass_bytes: "VHD bytes the VM's last pass sent, all disks and SRs (0 when it failed).",
  xen_cr_pass_full:
    "1 when the VM's last successful pass sent its disks in full, 0 for a delta (absent after a failure).",
  xen_cr_last_success_timestamp_seconds: 'When a pass of the VM last succeeded (Unix seconds).',
} as const

const JOB_METRICS = {
  xen_cr_job_run_success: "1 when the job's last run went through with every VM replicated, else 0.",
  xen_cr_job_run_timestamp_seconds: "When the job's last run ended (Unix seconds).",
} as const

type VmMetric = keyof typeof VM_METRICS
type JobMetric = keyof typeof JOB_METRICS

interface VmState {
  vm: string
  vmUuid: string
  jobId: string
  values: Partial<Record<VmMetric, number>>
}

function isVmMetric(name: string): name is VmMetric {
  return Object.hasOwn(VM_METRICS, name)
}

function isJobMetric(name: string): name is JobMetric {
  return Object.hasOwn(JOB_METRICS, name)
}

/**
 * The text of the metrics file after this invocation's `runs`, carrying over the `previous`
 * file's samples of what did not run. `jobs` are the jobs of the job store (id → current name).
 */
export async function runMetricsText(
  previous: readonly MetricSample[],
  runs: readonly JobRun[],
  jobs: ReadonlyMap<string, string>,
  now: Date,
): Promise<string> {
  const vmStates = new Map<string, VmState>()
  const jobStates = new Map<string, Partial<Record<JobMetric, number>>>()
  for (const sample of previous) {
    const jobId = sample.labels['job_id']
    if (jobId === undefined || !jobs.has(jobId)) continue
    if (isJobMetric(sample.name)) {
      jobStates.set(jobId, { ...jobStates.get(jobId), [sample.name]: sample.value })
    } else if (isVmMetric(sample.name)) {
      const vmUuid = sample.labels['vm_uuid']
      if (vmUuid === undefined) continue
      const key = `${jobId}/${vmUuid}`
      const state = vmStates.get(key) ?? { vm: sample.labels['vm'] ?? vmUuid, vmUuid, jobId, values: {} }
      state.values[sample.name] = sample.value
      vmStates.set(key, state)
    }
  }

  for (const run of runs) {
    const at = run.at.getTime() / 1000
    jobStates.set(run.job.id, { xen_cr_job_run_success: run.ok ? 1 : 0, xen_cr_job_run_timestamp_seconds: at })
    const before = new Map([...vmStates].filter(([, state]) => state.jobId === run.job.id))
    if (run.complete) for (const key of before.keys()) vmStates.delete(key)
    for (const { result, endedAt } of run.results) {
      const key = `${run.job.id}/${result.vm.uuid}`
      if (result.status === 'skipped') {
        // another controller's work: its metrics file says how that went; this one keeps what it knew
        const kept = before.get(key)
        if (kept !== undefined) vmStates.set(key, kept)
        continue
      }
      const ended = endedAt.getTime() / 1000
      const lastSuccess =
        result.status === 'success' ? ended : before.get(key)?.values.xen_cr_last_success_timestamp_seconds
      vmStates.set(key, {
        vm: result.vm.name,
        vmUuid: result.vm.uuid,
        jobId: run.job.id,
        values: {
          xen_cr_pass_success: result.status === 'success' ? 1 : 0,
          xen_cr_pass_timestamp_seconds: ended,
          xen_cr_pass_duration_seconds: result.durationMs / 1000,
          xen_cr_pass_bytes: result.status === 'success' ? result.bytes : 0,
          ...(result.status === 'success' ? { xen_cr_pass_full: result.mode === 'full' ? 1 : 0 } : {}),
          ...(lastSuccess === undefined ? {} : { xen_cr_last_success_timestamp_seconds: lastSuccess }),
        },
      })
    }
  }

  const registry = new Registry()
  const registers = [registry]
  const vmGauges = Object.entries(VM_METRICS).map(
    ([name, help]) => [name as VmMetric, new Gauge({ name, help, labelNames: VM_LABELS, registers })] as const,
  )
  const jobGauges = Object.entries(JOB_METRICS).map(
    ([name, help]) => [name as JobMetric, new Gauge({ name, help, labelNames: JOB_LABELS, registers })] as const,
  )
  const written = new Gauge({
    name: 'xen_cr_run_timestamp_seconds',
    help: 'When xen-cr run last wrote this file (Unix seconds).',
    registers,
  })
  const jobName = (jobId: string): string => jobs.get(jobId) ?? jobId
  // a stable order, so that two files with the same content are the same bytes
  const ordered = [...vmStates.values()].sort(
    (a, b) =>
      jobName(a.jobId).localeCompare(jobName(b.jobId)) || a.vm.localeCompare(b.vm) || a.vmUuid.localeCompare(b.vmUuid),
  )
  for (const state of ordered) {
    const labels = {
      job_name: jobName(state.jobId),
      job_id: state.jobId,
      vm: state.vm,
      vm_uuid: state.vmUuid,
    }
    for (const [name, gauge] of vmGauges) {
      const value = state.values[name]
      if (value !== undefined) gauge.set(labels, value)
    }
  }
  for (const [jobId, values] of [...jobStates].sort(([a], [b]) => jobName(a).localeCompare(jobName(b)))) {
    const labels = { job_name: jobName(jobId), job_id: jobId }
    for (const [name, gauge] of jobGauges) {
      const value = values[name]
      if (value !== undefined) gauge.set(labels, value)
    }
  }
  written.set(now.getTime() / 1000)
  return registry.metrics()
}
