/**
 * The job model: what a continuous-replication job is. Jobs live in the job store (a JSON
 * file); replication state lives in XAPI (see `replication/metadata.ts`).
 */

/** When a schedule is due: every `interval` (e.g. `15m`, `1h`, `24h`) or on a cron expression. */
export type ScheduleTiming =
  | { readonly kind: 'interval'; readonly interval: string; readonly intervalMs: number }
  | { readonly kind: 'cron'; readonly cron: string }

export interface Schedule {
  /** uuid; may be adopted from Xen Orchestra or a prior seed (`xo:backup:schedule`) */
  readonly id: string
  readonly timing: ScheduleTiming
  /** replicas kept per schedule, SR and VM (XO's copyRetention) */
  readonly retention: number
}

/** Which VMs of the source pool a job replicates: explicit uuids, tags, or all of them. */
export interface VmSelection {
  readonly uuids: readonly string[]
  readonly tags: readonly string[]
  readonly all: boolean
}

/** `xen-cr health-check` run after each pass (see `health-check-setting.ts`). */
export interface HealthCheckSetting {
  /** SR uuid for the test VM (a replica with a disk elsewhere is copied there); default: clone in place */
  readonly sr?: string
  /** the budget from the start to the verdict, as given (`10m`), and in ms */
  readonly timeout: string
  readonly timeoutMs: number
  /** wait for the guest script's verdict for every VM, not only those tagged xo-backup-health-check-xenstore */
  readonly xenstore: boolean
}

export interface Job {
  /** uuid; may be adopted from an existing XO job (`xo:backup:job`) */
  readonly id: string
  readonly name: string
  readonly enabled: boolean
  /** pool name in the config */
  readonly source: string
  readonly vms: VmSelection
  /** pool name in the config */
  readonly target: string
  /** target SR uuids; one replica per SR */
  readonly srs: readonly string[]
  readonly schedules: readonly Schedule[]
  /** VMs replicated in parallel */
  readonly concurrency: number
  /** a full every N passes (XO's fullInterval); 0 = never forced */
  readonly fullInterval: number
  /** source network uuid → target network uuid */
  readonly networkMap: Readonly<Record<string, string>>
  /** bytes per second for the whole job; undefined = unlimited */
  readonly maxRate?: number
  /** boot-test each VM's new replica after every pass; undefined = no health check */
  readonly healthCheck?: HealthCheckSetting
  /** ISO 8601 */
  readonly createdAt: string
}
