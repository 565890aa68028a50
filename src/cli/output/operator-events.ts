import type { JobChange } from '../../jobs/edit-job.js'
import type { Job } from '../../jobs/types.js'
import type { NetworkInventoryItem, SrInventoryItem, VmInventoryItem } from '../../xapi/inventory.js'
import type { JobRpoCheck } from '../../replication/rpo-check.js'

/** A job whose state could not be read (its target pool is unreachable, say). */
export interface UnreadableJob {
  readonly job: { readonly id: string; readonly name: string; readonly enabled: boolean }
  readonly code: string
  readonly message: string
}

/** Results of `xen-cr list --check`, the monitoring probe. */
export type MonitoringEvent = {
  readonly kind: 'rpo-check'
  /** every checked VM is within its limit and every checked job could be read */
  readonly ok: boolean
  readonly jobs: readonly JobRpoCheck[]
  /** checked jobs that could not be read: no verdict for their VMs */
  readonly unknown: readonly UnreadableJob[]
  /** disabled jobs, not checked (`--include-disabled` checks them) */
  readonly skipped: readonly { readonly id: string; readonly name: string }[]
}

/** Results of `xen-cr vms|srs|networks <pool>`: what a job can name, with uuids. */
export type InventoryEvent =
  | { readonly kind: 'vm-inventory'; readonly pool: string; readonly vms: readonly VmInventoryItem[] }
  | { readonly kind: 'sr-inventory'; readonly pool: string; readonly srs: readonly SrInventoryItem[] }
  | { readonly kind: 'network-inventory'; readonly pool: string; readonly networks: readonly NetworkInventoryItem[] }

/** `xen-cr completion bash|zsh`: the script, printed as it is. */
export type CompletionEvent = {
  readonly kind: 'completion-script'
  readonly shell: 'bash' | 'zsh'
  readonly script: string
}

/** Result of `xen-cr job edit`: the job as saved, and what changed (empty: nothing, nothing written). */
export type JobEditEvent = {
  readonly kind: 'job-edited'
  readonly job: Job
  readonly changes: readonly JobChange[]
  readonly crontab: string
}
