/**
 * The single definition of every `other_config` key, value format, name and message xen-cr
 * reads or writes on XAPI objects. Compatible with Xen Orchestra's continuous replication
 * (reference `xo-replication-behaviour.md` §0–2): we read eras A, B and C and write era B plus
 * `xo:backup:contentKey`.
 */

/** Every `other_config` key xen-cr reads or writes. */
export const KEYS = {
  datetime: 'xo:backup:datetime',
  job: 'xo:backup:job',
  schedule: 'xo:backup:schedule',
  vm: 'xo:backup:vm',
  sr: 'xo:backup:sr',
  exported: 'xo:backup:exported',
  deltaChainLength: 'xo:backup:deltaChainLength',
  contentKey: 'xo:backup:contentKey',
  includeNonNbdQcow2Fix: 'xo:backup:includeNonNbdQcow2Fix',
  copyOf: 'xo:copy_of',
  /** era A: on a replica VM, the uuid of the source base snapshot VM of the delta it holds */
  baseDelta: 'xo:base_delta',
  /** on a freshly created replica VDI of a delta: the source base snapshot VDI uuid */
  baseDeltaVdi: 'xo:base_delta_vdi',
} as const

export type MetadataKey = (typeof KEYS)[keyof typeof KEYS]

/**
 * Keys XO strips from a live source VM and its disks at the start of each run, so that manual
 * snapshots of it do not inherit them (`resetVmOtherConfig`).
 */
export const LIVE_VM_RESET_KEYS: readonly MetadataKey[] = [
  KEYS.datetime,
  KEYS.deltaChainLength,
  KEYS.exported,
  KEYS.job,
  KEYS.schedule,
  KEYS.vm,
  KEYS.contentKey,
  KEYS.includeNonNbdQcow2Fix,
  KEYS.copyOf,
]

/**
 * Prefix of every lease entry (`replication/vm-lease.ts`): `xen-cr:lease:<job id>:<n>` on a live
 * source VM while a pass of that job works on it. `VM.snapshot` copies `other_config`, so the
 * job's snapshots carry the entries of the moment; they are never copied to a replica.
 */
export const LEASE_KEY_PREFIX = 'xen-cr:lease:'

/** The prefix of one job's lease entries. */
export function leaseKeyPrefix(jobId: string): string {
  return `${LEASE_KEY_PREFIX}${jobId}:`
}

/**
 * Keys xen-cr writes outside XO's `xo:` namespace, so that no pass, retention, listing or XO ever
 * takes the object for a replica. On a VM made by `failover` (and each of its disks): where it
 * came from, which failback needs to send back only what changed since. On an original VM while
 * `failback --in-place` writes into its disks: the replica whose base the writes go on top of.
 */
export const RECOVERY_KEYS = {
  /** failover VM: uuid of the replica VM it was cloned from */
  failoverReplica: 'xen-cr:failover:replica',
  /** failover VM: id of the job that made that replica */
  failoverJob: 'xen-cr:failover:job',
  /** failover VM's disk: uuid of the replica disk it was cloned from */
  failoverReplicaVdi: 'xen-cr:failover:replica-vdi',
  /** original VM: an in-place failback is writing (or was interrupted writing) the delta on top of this replica's base */
  failbackInPlace: 'xen-cr:failback:in-place',
} as const

/**
 * Source VM settings a replica must not have itself — HA would boot it — recorded on the replica
 * VM under these keys so that a failover VM gets them back. Outside XO's `xo:` namespace and not
 * replication keys: failover reads them, applies them and removes them.
 */
export const SOURCE_SETTING_KEYS = {
  /** the source VM's `ha_restart_priority` ("restart", "best-effort"); absent when HA was off */
  haRestartPriority: 'xen-cr:ha_restart_priority',
  /** `true` when the source VM had the (deprecated) `ha_always_run` set; absent otherwise */
  haAlwaysRun: 'xen-cr:ha_always_run',
} as const

/** The HA settings of a source VM, as {@link SOURCE_SETTING_KEYS} record them. */
export interface HaSettings {
  readonly ha_restart_priority: string
  readonly ha_always_run: boolean
}

/** The replica VM's keys recording `vm`'s HA settings; none when HA was off. */
export function haSettingKeys(vm: HaSettings): Record<string, string> {
  return {
    ...(vm.ha_restart_priority === '' ? {} : { [SOURCE_SETTING_KEYS.haRestartPriority]: vm.ha_restart_priority }),
    ...(vm.ha_always_run ? { [SOURCE_SETTING_KEYS.haAlwaysRun]: 'true' } : {}),
  }
}

/** The HA settings recorded in `otherConfig` (HA off when nothing is recorded). */
export function recordedHaSettings(otherConfig: Readonly<Record<string, string>>): HaSettings {
  return {
    ha_restart_priority: otherConfig[SOURCE_SETTING_KEYS.haRestartPriority] ?? '',
    ha_always_run: otherConfig[SOURCE_SETTING_KEYS.haAlwaysRun] === 'true',
  }
}

/** Placeholder datetime of a replica being imported: sorts oldest, marks it incomplete. No colons (XO's `formatFilenameDate(0)`). */
export const PLACEHOLDER_DATETIME = '19700101T000000Z'

/** The reason stored in `blocked_operations.start` / `.start_on` of a complete replica (XO's exact text). */
export const START_BLOCKED_MESSAGE = 'Start operation for this vm is blocked, clone it if you want to use it.'

/** The reason stored while a replica is being imported. */
export const IMPORTING_BLOCKED_MESSAGE = 'Importing…'

/** Operations blocked on every replica. */
export const BLOCKED_START_OPERATIONS = ['start', 'start_on'] as const

/** Tag on every replica VM. */
export const REPLICA_TAG = 'Continuous Replication'

/** Name XO gives a snapshot before renaming it; leftovers with this name are debris of a crashed run. */
export const TEMP_SNAPSHOT_NAME = 'xo-backup-temp-snapshot-name'

/** `"true"` — how XO writes flags. */
export const TRUE = 'true'

const pad = (n: number, width = 2): string => String(n).padStart(width, '0')

/** XAPI's datetime form `YYYYMMDDTHH:MM:SSZ` (UTC), used for `xo:backup:datetime`. */
export function formatXapiDateTime(date: Date): string {
  return (
    `${pad(date.getUTCFullYear(), 4)}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}` +
    `T${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}Z`
  )
}

/** The compact form `YYYYMMDDTHHmmssZ` (UTC) used inside replica names. */
export function formatNameDate(date: Date): string {
  return formatXapiDateTime(date).replaceAll(':', '')
}

const COMPACT = /^(\d{4})(\d{2})(\d{2})T(\d{2}):?(\d{2}):?(\d{2})Z?$/

/**
 * Parses `YYYYMMDDTHH:MM:SSZ`, `YYYYMMDDTHHmmssZ` (names, the 1970 placeholder) or RFC 3339
 * (which XAPI also accepts on input). Undefined when it is none of them.
 */
export function parseXapiDateTime(value: string | undefined): Date | undefined {
  if (value === undefined || value === '') return undefined
  const m = COMPACT.exec(value)
  if (m !== null) {
    const [, y, mo, d, h, mi, s] = m
    const t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s))
    return Number.isNaN(t) ? undefined : new Date(t)
  }
  if (/^\d{4}-\d{2}-\d{2}T/.test(value)) {
    const t = Date.parse(value)
    return Number.isNaN(t) ? undefined : new Date(t)
  }
  return undefined
}

/**
 * Canonical comparable form of a datetime value. XO compares `xo:backup:datetime` as strings,
 * which works within one format; a seed copying `snapshot_time` over XML-RPC could carry an RFC
 * 3339 string, so we normalise before comparing. Unparseable values sort first.
 */
export function datetimeSortKey(value: string | undefined): string {
  const date = parseXapiDateTime(value)
  return date === undefined ? '' : formatXapiDateTime(date)
}

/** True for a missing datetime or the in-progress placeholder (in either epoch spelling). */
export function isPlaceholderDatetime(value: string | undefined): boolean {
  if (value === undefined || value === '') return true
  const date = parseXapiDateTime(value)
  return date === undefined || date.getTime() === 0
}

/** `<VM name> - <job name> - (<YYYYMMDDTHHmmssZ>)` — the name of a complete replica. */
export function replicaName(vmName: string, jobName: string, date: Date): string {
  return `${vmName} - ${jobName} - (${formatNameDate(date)})`
}

/** Name of a replica while it is imported. */
export function importingName(name: string): string {
  return `[Importing…] ${name}`
}

/** Name of a source snapshot (XO's `snapshotNameLabelTpl`). */
export function snapshotName(jobName: string, vmName: string): string {
  return `[XO Backup ${jobName}] ${vmName}`
}

/**
 * The date inside the trailing `(…)` of a replica name (era A shape), which XO's retention
 * falls back to when `xo:backup:datetime` is missing.
 */
export function dateFromReplicaName(name: string): Date | undefined {
  const m = /\((\d{8}T\d{6}Z)\)$/.exec(name)
  return m?.[1] === undefined ? undefined : parseXapiDateTime(m[1])
}

type OtherConfig = Readonly<Record<string, string>>

/** Who a pass belongs to. */
export interface PassIdentity {
  readonly jobId: string
  readonly scheduleId: string
  /** uuid of the live source VM */
  readonly vmUuid: string
}

/** Written on a new source snapshot VM and each of its disks right after `VM.snapshot`. */
export function sourceSnapshotKeys(id: PassIdentity, datetime: string): Record<string, string> {
  return { [KEYS.datetime]: datetime, [KEYS.job]: id.jobId, [KEYS.schedule]: id.scheduleId, [KEYS.vm]: id.vmUuid }
}

/** Extra key on each source snapshot disk: its content key is its own uuid (era C). */
export function sourceSnapshotVdiKeys(id: PassIdentity, datetime: string, vdiUuid: string): Record<string, string> {
  return { ...sourceSnapshotKeys(id, datetime), [KEYS.contentKey]: vdiUuid }
}

/** Written on the source snapshot VM and its disks after a successful transfer; `exported` is the success marker. */
export function exportedKeys(deltaChainLength: number): Record<string, string> {
  return { [KEYS.deltaChainLength]: String(deltaChainLength), [KEYS.exported]: TRUE }
}

/** Keys on a replica VM at creation (placeholder datetime) or at completion (real datetime). */
export function replicaVmKeys(
  id: PassIdentity,
  srUuid: string,
  sourceSnapshotVmUuid: string,
  datetime: string,
): Record<string, string> {
  return {
    [KEYS.copyOf]: sourceSnapshotVmUuid,
    [KEYS.job]: id.jobId,
    [KEYS.schedule]: id.scheduleId,
    [KEYS.vm]: id.vmUuid,
    [KEYS.sr]: srUuid,
    [KEYS.datetime]: datetime,
  }
}

/** Written on a replica's disks, then on its VM, once it is complete: the real datetime is the marker. */
export function replicaCompleteKeys(datetime: string): Record<string, string> {
  return { [KEYS.datetime]: datetime }
}

/** Keys on a replica disk; `contentKey` is the source snapshot disk's content key. */
export function replicaVdiKeys(
  id: PassIdentity,
  srUuid: string,
  source: { readonly vdiUuid: string; readonly contentKey: string },
  datetime: string,
): Record<string, string> {
  return {
    [KEYS.copyOf]: source.vdiUuid,
    [KEYS.contentKey]: source.contentKey,
    [KEYS.job]: id.jobId,
    [KEYS.schedule]: id.scheduleId,
    [KEYS.vm]: id.vmUuid,
    [KEYS.sr]: srUuid,
    [KEYS.datetime]: datetime,
  }
}

/** Which generation of XO layout a record's keys follow. */
export type Era = 'A' | 'B' | 'C'

/** What the backup keys of a source snapshot say, whatever the era that wrote them. */
export interface SourceSnapshotMeta {
  readonly datetime: string
  readonly jobId: string
  readonly scheduleId: string | undefined
  readonly vmUuid: string | undefined
  readonly exported: boolean
  readonly deltaChainLength: number
  /**
   * A: keys on the VM only (XO ≤ 5.95, xo-cr-seed 1.0.2); B: also on every disk; C: disks also
   * carry a content key.
   */
  readonly era: Era
}

function chainLength(value: string | undefined): number {
  const n = Number(value)
  return Number.isInteger(n) && n >= 0 ? n : 0
}

/**
 * Reads a source snapshot's backup keys from the VM and its disks. Era A keeps them on the VM
 * only; later eras put them on every disk with the same datetime. Undefined when the snapshot
 * carries no job key or no datetime (it is not a backup snapshot). `exported` requires every
 * disk that carries keys to agree (era B writes the marker on all of them after the transfer).
 */
export function readSourceSnapshot(
  vmOtherConfig: OtherConfig,
  diskOtherConfigs: readonly OtherConfig[],
): SourceSnapshotMeta | undefined {
  const datetime = vmOtherConfig[KEYS.datetime]
  const jobId = vmOtherConfig[KEYS.job]
  if (datetime === undefined || jobId === undefined || isPlaceholderDatetime(datetime)) return undefined
  const keyed = diskOtherConfigs.filter(oc => oc[KEYS.job] !== undefined)
  const era: Era = keyed.length === 0 ? 'A' : keyed.some(oc => oc[KEYS.contentKey] !== undefined) ? 'C' : 'B'
  const exported = vmOtherConfig[KEYS.exported] !== undefined && keyed.every(oc => oc[KEYS.exported] !== undefined)
  const lengths = [vmOtherConfig, ...keyed].map(oc => chainLength(oc[KEYS.deltaChainLength]))
  return {
    datetime,
    jobId,
    scheduleId: vmOtherConfig[KEYS.schedule],
    vmUuid: vmOtherConfig[KEYS.vm],
    exported,
    deltaChainLength: Math.max(...lengths),
    era,
  }
}

/** What the keys of a replica VM (or an era-C target snapshot) say. */
export interface ReplicaMeta {
  readonly jobId: string | undefined
  readonly scheduleId: string | undefined
  readonly vmUuid: string | undefined
  readonly srUuid: string | undefined
  /** uuid of the source snapshot VM it is a copy of */
  readonly copyOf: string | undefined
  /** undefined while importing (placeholder) or when unknown */
  readonly datetime: string | undefined
  /** false for a replica left by an interrupted pass */
  readonly complete: boolean
}

/**
 * Reads a replica VM's keys. The datetime falls back to the date in the name's trailing `(…)`
 * as XO's retention does (era A replicas made before the key existed). A replica is complete
 * when its datetime is real and its start is not blocked with the "Importing…" reason.
 */
export function readReplica(vm: {
  readonly name_label: string
  readonly other_config: OtherConfig
  readonly blocked_operations: OtherConfig
}): ReplicaMeta {
  const oc = vm.other_config
  const raw = oc[KEYS.datetime]
  let datetime: string | undefined
  if (raw !== undefined && !isPlaceholderDatetime(raw)) datetime = raw
  else if (raw === undefined) {
    const fromName = dateFromReplicaName(vm.name_label)
    if (fromName !== undefined) datetime = formatXapiDateTime(fromName)
  }
  const importing = vm.blocked_operations['start'] === IMPORTING_BLOCKED_MESSAGE
  return {
    jobId: oc[KEYS.job],
    scheduleId: oc[KEYS.schedule],
    vmUuid: oc[KEYS.vm],
    srUuid: oc[KEYS.sr],
    copyOf: oc[KEYS.copyOf],
    datetime,
    complete: datetime !== undefined && !importing,
  }
}

/**
 * True when a replica VM belongs to this job's schedule, SR and source VM, as XO's
 * `listReplicatedVms` matches it: `xo:backup:job` equal to the job id, or either key equal to
 * the schedule id (XO matches retention by schedule through either key); `xo:backup:vm` equal or
 * absent (very old replicas). A missing `xo:backup:sr` (era A before completion) never matches.
 */
export function replicaBelongsTo(meta: ReplicaMeta, id: PassIdentity, srUuid: string, by: 'job' | 'schedule'): boolean {
  const owner =
    by === 'job'
      ? meta.jobId === id.jobId || meta.scheduleId === id.scheduleId
      : meta.scheduleId === id.scheduleId || meta.jobId === id.scheduleId
  return owner && meta.srUuid === srUuid && (meta.vmUuid === undefined || meta.vmUuid === id.vmUuid)
}

/** True when start and start_on are blocked (with any reason): the replica is still protected. */
export function isStartBlocked(blockedOperations: OtherConfig): boolean {
  return blockedOperations['start'] !== undefined
}

/** A disk's content key: `xo:backup:contentKey` when set (era C), else its own uuid. */
export function contentKeyOf(vdi: { readonly uuid: string; readonly other_config: OtherConfig }): string {
  return vdi.other_config[KEYS.contentKey] ?? vdi.uuid
}
