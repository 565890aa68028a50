/**
 * The one error hierarchy of xen-cr.
 *
 * Every error we throw is a {@link XenCrError} with a stable string `code` that callers match
 * on, an optional `cause`, and typed context. Every code is an entry of {@link ERROR_CODES},
 * which gives its category (and so, in `src/cli/exit-codes.ts`, its exit code) and what it
 * means; the README's "Error codes" table is checked against it, and a test checks that every
 * code is thrown only by classes of its category (one code, one exit code).
 * Messages are one line, name the object involved and, where the user can act, say what to do.
 * They never contain secrets.
 */

/** What kind of failure this is, which decides the exit code at the CLI edge. */
export type ErrorCategory =
  /** bad flags or arguments (exit 2) */
  | 'usage'
  /** invalid or missing configuration (exit 2) */
  | 'config'
  /** cannot reach or log in to a pool (exit 4) */
  | 'connection'
  /** another run holds the lease (exit 3) */
  | 'lease'
  /** the request was refused before anything was written (exit 5) */
  | 'validation'
  /** the work ran and failed (exit 1) */
  | 'failure'

const usage = (meaning: string) => ({ category: 'usage', meaning }) as const
const config = (meaning: string) => ({ category: 'config', meaning }) as const
const connection = (meaning: string) => ({ category: 'connection', meaning }) as const
const lease = (meaning: string) => ({ category: 'lease', meaning }) as const
const validation = (meaning: string) => ({ category: 'validation', meaning }) as const
const failure = (meaning: string) => ({ category: 'failure', meaning }) as const

/**
 * Every code xen-cr reports, with its category and a one-line meaning (the README's table).
 * XAPI's own codes are not here: a {@link XapiError} reports `XAPI_<server code>`, open-ended.
 */
export const ERROR_CODES = {
  USAGE: usage('the command line was refused: unknown command or option, missing argument'),
  BAD_DATETIME: usage('`--at` is not a datetime'),
  BAD_NETWORK_MAP: usage('a `--network-map` entry is not SRC=DST'),
  CONFLICTING_OPTIONS: usage('options that exclude each other were given together'),
  CONFIRMATION_REQUIRED: usage('a deletion needs `--yes` when there is no terminal to confirm on; nothing deleted'),
  IMPORT_LENGTH_REQUIRED: usage('a raw disk import was asked for without the exact length of its source'),
  INVALID_CRON: usage('a `--cron` expression does not parse'),
  INVALID_INTERVAL: usage('an `--interval` is not a duration of at least one minute'),
  INVALID_OPTION: usage("an option's value is malformed (not a uuid, a number or one of its words)"),
  INVALID_RATE: usage('a rate is not bytes per second with a binary unit (e.g. 50M), at least 1'),
  JOB_NOT_FOUND: usage('no job with that id or name in the job store'),
  LAB_LOGIN_DELAY: usage('`lab --login-delay` is not a whole number of milliseconds'),
  MISSING_OPTION: usage('a required option is missing'),
  NETWORK_AMBIGUOUS: usage('a `--network-map` name matches several networks; give the uuid'),
  NETWORK_MAP_CONFLICT: usage('`--network-map` maps one network to two different networks'),
  NOTHING_CHOSEN: usage('neither `--replica` nor `--all` says what to delete'),
  POOL_REQUIRED: usage('seeding for a job that is not in the job store needs `--source` and `--target`'),
  RUN_DUE_WITH_JOB: usage('`run --due` was also given a job'),
  RUN_WITHOUT_JOB: usage('`run` was given neither a job nor `--due`'),
  SCHEDULE_NOT_FOUND: usage('the job has no schedule with that id, or none at all'),
  SCHEDULE_REQUIRED: usage('seeding for a job that is not in the job store needs `--schedule`'),
  VM_NOT_IN_JOB: usage('`--vm` names a VM that the job does not replicate'),

  CONFIG_INVALID: config('a key or value of the config file is invalid (the message names it)'),
  CONFIG_NOT_FOUND: config('the config file named by `--config` or `XEN_CR_CONFIG` does not exist'),
  CONFIG_PARSE: config('the config file cannot be parsed'),
  CONFIG_UNREADABLE: config('the config file cannot be read (permissions), or the path names a directory'),
  NO_POOLS_CONFIGURED: config('`config check` found no pool in the config: there is nothing to check'),
  JOBS_FILE_INVALID: config('the job store is not valid JSON or holds an invalid job'),
  JOBS_FILE_UNREADABLE: config('the job store cannot be read'),
  JOBS_FILE_UNWRITABLE: config('the job store cannot be written'),
  METRICS_FILE_UNREADABLE: config('the existing `--metrics-file` cannot be read (to carry over the jobs not run)'),
  METRICS_FILE_UNWRITABLE: config('the `--metrics-file` cannot be written: its folder is missing or not writable'),
  LAB_OBJECT_UNKNOWN: config("the lab's control API was given an object the lab does not have"),
  LAB_SPEC_INVALID: config('the lab spec is not valid JSON or has an invalid value'),
  LAB_SPEC_UNREADABLE: config('the lab spec cannot be read'),
  LAB_STATE_CORRUPT: config("the lab directory's state file is not valid JSON"),
  LAB_DIR_IN_USE: config('another `xen-cr lab` is running on that `--dir` (its pid is in `<dir>/lab.lock`)'),
  PASSWORD_EMPTY: config("a pool's password file is empty"),
  PASSWORD_ENV_UNSET: config("the environment variable of a pool's `passwordEnv` is not set"),
  PASSWORD_FILE_UNREADABLE: config("a pool's password file cannot be read"),
  PASSWORD_MISSING: config('a pool has no password source and there is no terminal to ask on'),
  POOL_CREDENTIALS_MISSING: config('a pool given by URL has neither a configured pool nor user:password in the URL'),
  POOL_NOT_CONFIGURED: config('no pool of that name in the config'),
  POOL_URL_INVALID: config('a pool URL is not an http: or https: URL'),

  POOL_AUTH_FAILED: connection('the pool refused the user and password'),
  POOL_TLS: connection("TLS to a pool or host failed: untrusted certificate, or the URL's scheme is wrong"),
  POOL_TLS_FINGERPRINT: connection(
    'a host presented a certificate whose fingerprint is not pinned for its pool; nothing was sent',
  ),
  POOL_UNREACHABLE: connection('a pool cannot be reached, is not a XAPI pool coordinator, or lost the session'),

  FILE_LOCKED: lease('another process holds the lock on the job store'),
  JOB_RUNNING: lease("another run holds the job's lease on one of its VMs; nothing was done"),

  JOB_EXISTS: validation('another job already has that id or name'),
  JOB_CHANGED: validation('`job edit`: the job was changed by another process during the check; nothing saved'),
  BASE_SNAPSHOT_GONE: validation(
    "verify: the replica's source snapshot (`xo:copy_of`) or one of its disks is no longer on the source pool",
  ),
  FAILBACK_NO_BASE: validation(
    'failback: the replica a failed-over VM came from, or its base snapshot on the source pool, is gone or was started; nothing sent',
  ),
  IN_PLACE_REFUSED: validation(
    'failback `--in-place`: the original VM is gone, not halted, or changed since the base snapshot; nothing written',
  ),
  NOT_FAILED_OVER: validation(
    'failback: no VM made by `xen-cr failover` of the job on the target pool (or none matches `--vm`); nothing done',
  ),
  FAILOVER_VM_EXISTS: validation('a VM with the failover name is already on the target pool (an earlier failover?)'),
  NO_COMPLETE_REPLICA: validation(
    'failover, verify, health check: the VM has only replicas left by interrupted passes; nothing done for it',
  ),
  NO_REPLICA: validation(
    'failover, verify, health check: the VM (or the whole job) has no replica on the target pool; nothing done for it',
  ),
  NO_REPLICA_AT: validation('failover: the VM has no complete replica at or before `--at`; nothing created'),
  NETWORK_NOT_FOUND: validation('a network of the network map is not on its pool'),
  NO_DEFAULT_SR: validation('no `--sr` was given and the target pool has no default SR'),
  REPLICA_NOT_IN_JOB: validation('the uuid is not a replica of that job on the target pool; nothing done'),
  REPLICA_RUNNING: validation('the replica is running; shut it down first; nothing deleted'),
  REPLICA_STARTED: validation('failover: the chosen replica was started or its start unblocked; nothing created'),
  SEED_ALREADY_REPLICATED: validation('the job already has a copy of that snapshot on that SR'),
  SEED_CONTENT_MISMATCH: validation("`--verify` found the target disks' content different from the snapshot's"),
  SEED_DISKS_MISMATCH: validation("the target VM's disks do not match the snapshot's in number or size"),
  SEED_DISKS_ON_SEVERAL_SRS: validation("the target VM's disks are on more than one SR"),
  SEED_FILE_MISMATCH: validation('a file of the seed folder is missing or differs from the manifest'),
  SEED_ID_INVALID: validation('an id given to the seed is not a uuid'),
  SEED_MANIFEST_INVALID: validation("the seed folder's manifest is invalid, or for another job"),
  SEED_NOT_A_SNAPSHOT: validation('the snapshot uuid names something that is not a snapshot'),
  SEED_NO_DISKS: validation('the snapshot has no disks'),
  SEED_OUT_NOT_EMPTY: validation('the export folder already holds a seed'),
  SEED_SNAPSHOT_CLAIMED: validation('the snapshot already belongs to another job or schedule'),
  SEED_SNAPSHOT_NOT_FOUND: validation('the snapshot is not on the source pool'),
  SEED_SOURCE_VM_GONE: validation("the snapshot's VM no longer exists"),
  SEED_SR_NOT_IN_JOB: validation("the SR is not on the target pool or not one of the job's SRs"),
  SEED_TARGET_CLAIMED: validation('the target VM or one of its disks is already a copy of something else, or shared'),
  SEED_TARGET_IS_SOURCE: validation('the target VM is the source VM itself'),
  SEED_TARGET_NOT_A_VM: validation('the target uuid names a snapshot or template, not a VM'),
  SEED_TARGET_NOT_FOUND: validation('the target VM is not on the target pool'),
  SEED_TARGET_NOT_HALTED: validation('the target VM is not halted (a seed must never have run)'),
  SEED_VM_NOT_FOUND: validation('the VM to export is not on the source pool'),
  SEED_VM_NOT_IN_JOB: validation('the VM (or the VM of the snapshot or seed) is not one that the job replicates'),
  SR_NOT_FOUND: validation('an SR of the job (or of `--sr`) is not on the target pool'),
  SR_NOT_USABLE: validation('the SR does not hold VM disks (an ISO library, for instance)'),
  VM_IS_REPLICA: validation('the VM is a replica made by this job'),
  VM_IS_SNAPSHOT_OR_TEMPLATE: validation('the VM is a snapshot or a template'),
  VM_NOT_FOUND: validation('a VM of the job is not on the source pool (in a pass, that VM fails: exit 1)'),
  VM_NOT_REPLICABLE: validation('the uuid names a disk (VDI), snapshot, template or control domain, not a VM'),

  UNEXPECTED: failure('an error xen-cr did not anticipate: please report it, with the `--verbose` output'),
  ABORTED: failure('interrupted (SIGINT, SIGTERM) or timed out'),
  CALL_TIMEOUT: failure('a XAPI call got no answer in time'),
  LEASE_LOST: failure(
    "another controller took over the VM's lease after it expired unrenewed; that VM's pass was stopped and undone",
  ),
  CLIENT_CLOSED: failure('the XAPI client was closed while a call or a task wait was pending'),
  DISK_TRANSFER_FAILED: failure("a disk's transfer from source to target failed (the cause says why)"),
  HEALTH_CHECK_NOT_RUNNING: failure('health check: the clone did not reach Running within the timeout'),
  HEALTH_CHECK_NO_TOOLS: failure('health check: no guest tools reported within the timeout'),
  HEALTH_CHECK_NO_VERDICT: failure(
    'health check: the guest script wrote no success or failure in `vm-data/xo-backup-health-check` within the timeout',
  ),
  HEALTH_CHECK_SCRIPT_FAILED: failure('health check: the guest script reported failure (its message follows)'),
  NBD_CONNECTION: failure('an NBD connection could not be made, was closed in the middle of an answer, or stalled'),
  NBD_PROTOCOL: failure('an NBD server broke the protocol (bad magic, unexpected reply)'),
  NBD_READ_FAILED: failure('an NBD read returned an error'),
  NBD_REFUSED: failure('an NBD server refused TLS or the export'),
  NBD_TLS: failure('TLS to an NBD server failed, or its certificate is not the one XAPI announced for it'),
  REPLICA_DIFFERS: failure("verify: a replica disk's content differs from its base snapshot disk's"),
  SOURCE_LENGTH_MISMATCH: failure('a disk source sent a different number of bytes than it announced'),
  TASK_DESTROYED: failure("a XAPI task was destroyed before it completed; the operation's outcome is unknown"),
  TASK_NOT_SETTLED: failure('a XAPI task did not complete in time'),
  TASK_RESULT_INVALID: failure("a XAPI task's result is not an XML-RPC value"),
  TRANSFER_BAD_REDIRECT: failure('a host answered a redirect without a Location'),
  TRANSFER_HTTP_STATUS: failure('a disk or VM transfer got an HTTP error status'),
  TRANSFER_INCOMPLETE: failure('a host closed the connection before the end of its answer'),
  TRANSFER_INTERRUPTED: failure("a transfer's stream broke off before the end"),
  TRANSFER_LENGTH_MISMATCH: failure('a transfer carried a different number of bytes than its length'),
  TRANSFER_NOT_DISK_DATA: failure('a host sent an HTTP response inside the body instead of disk data'),
  TRANSFER_NO_RESPONSE: failure('a host closed the connection without answering'),
  TRANSFER_STALLED: failure('a host stopped sending data'),
  TRANSFER_TOO_MANY_REDIRECTS: failure('a transfer was redirected too many times'),
  VHD_BAD_BLOCK_SIZE: failure('a VHD block size is not a power of two in the supported range'),
  VHD_BAD_CHECKSUM: failure('a VHD footer or header checksum is wrong'),
  VHD_BAD_COOKIE: failure('not a VHD: a footer or header cookie is wrong'),
  VHD_BAD_HEADER: failure('a VHD offset field points where a forward-only stream cannot go'),
  VHD_BAD_SOURCE: failure('a disk to write as VHD has an impossible size or block list'),
  VHD_BAD_VALUE: failure('a VHD field is out of range'),
  VHD_BAD_VERSION: failure('a VHD format or header version is not supported'),
  VHD_BAT_OUT_OF_RANGE: failure('a VHD block table entry points outside the disk or into the table'),
  VHD_BLOCK_OVERLAP: failure('two VHD blocks overlap'),
  VHD_FOOTER_MISMATCH: failure("a VHD's trailing footer differs from its copy at the start"),
  VHD_LENGTH_MISMATCH: failure('a normalised VHD is not as long as announced'),
  VHD_SOURCE_ERROR: failure('the stream a VHD was read from failed'),
  VHD_TRUNCATED: failure('a VHD stream ended early'),
  VHD_UNSUPPORTED_TYPE: failure('a fixed VHD cannot be streamed; only dynamic and differencing ones'),
  XAPI_CALL_FAILED: failure('a XAPI call failed without an error code from the server'),
  XVA_IMPORT_NO_VM: failure('an XVA import task succeeded but named no VM'),
  LAB_DISK_EXISTS: failure('the lab disk store already has a disk with that id'),
  LAB_DISK_NOT_FOUND: failure('the lab disk store has no disk with that id'),
  LAB_DISK_RANGE: failure('a lab disk was asked for bytes or blocks outside it, or an invalid size'),
  LAB_DISK_READ_ONLY: failure('a lab snapshot disk was written to'),
  LAB_DISK_SHRINK: failure('a lab disk was asked to shrink'),
  LAB_STORE_CLOSED: failure('the lab disk store was used after it was closed'),
  LAB_STORE_CORRUPT: failure("the lab disk store's metadata is not valid JSON"),
  XVA_BAD_HEADER: failure('an XVA sent to the lab has a bad tar header'),
  XVA_BAD_METADATA: failure('an XVA sent to the lab has an invalid `ova.xml`'),
  XVA_BEYOND_DISK: failure('an XVA sent to the lab has a chunk past the end of its disk'),
  XVA_CHECKSUM_MISMATCH: failure('an XVA sent to the lab has a chunk whose checksum is wrong'),
  XVA_INVALID: failure('an XVA sent to the lab does not follow the format'),
  XVA_MEMBER_TOO_LARGE: failure('an XVA sent to the lab has a tar member larger than expected'),
  XVA_MISSING_OBJECT: failure('an XVA sent to the lab refers to an object that its `ova.xml` does not define'),
  XVA_TRUNCATED: failure('an XVA sent to the lab ended early'),
} as const

/** A code of ours (see {@link ERROR_CODES}). */
export type ErrorCode = keyof typeof ERROR_CODES

/** The codes of one category, e.g. for a function that only ever builds validation errors. */
export type ErrorCodeOf<C extends ErrorCategory> = {
  [K in ErrorCode]: (typeof ERROR_CODES)[K]['category'] extends C ? K : never
}[ErrorCode]

/** A XAPI error's code: the server's, prefixed so that it never collides with ours. */
export type XapiErrorCode = `XAPI_${string}`

/** Every `code` a {@link XenCrError} can carry. */
export type XenCrErrorCode = ErrorCode | XapiErrorCode

export interface XenCrErrorOptions {
  cause?: unknown
}

export class XenCrError extends Error {
  readonly code: XenCrErrorCode
  readonly category: ErrorCategory

  // Only the classes below construct it: each stands for one category.
  protected constructor(
    code: XenCrErrorCode,
    message: string,
    category: ErrorCategory,
    options: XenCrErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.category = category
  }

  override get name(): string {
    return this.constructor.name
  }
}

/** Flags or arguments the user got wrong. */
export class UsageError extends XenCrError {
  constructor(code: ErrorCode, message: string, options?: XenCrErrorOptions) {
    super(code, message, 'usage', options)
  }
}

/** A config file, key or credential source that is missing or invalid. */
export class ConfigError extends XenCrError {
  readonly file: string | undefined
  readonly key: string | undefined

  constructor(
    code: ErrorCode,
    message: string,
    context: { file?: string; key?: string } = {},
    options?: XenCrErrorOptions,
  ) {
    super(code, message, 'config', options)
    this.file = context.file
    this.key = context.key
  }
}

/** A pool that cannot be reached or logged in to. */
export class ConnectionError extends XenCrError {
  readonly url: string | undefined

  constructor(code: ErrorCode, message: string, context: { url?: string } = {}, options?: XenCrErrorOptions) {
    super(code, message, 'connection', options)
    this.url = context.url
  }
}

/** A request refused by validation before anything was written. */
export class ValidationError extends XenCrError {
  constructor(code: ErrorCode, message: string, options?: XenCrErrorOptions) {
    super(code, message, 'validation', options)
  }
}

/** Another run holds the lease on this job or VM. */
export class LeaseError extends XenCrError {
  constructor(code: ErrorCode, message: string, options?: XenCrErrorOptions) {
    super(code, message, 'lease', options)
  }
}

/** Work that started and failed: a transfer, a pass, a VM. */
export class OperationError extends XenCrError {
  constructor(code: ErrorCode, message: string, options?: XenCrErrorOptions) {
    super(code, message, 'failure', options)
  }
}

/** The operation was aborted through its AbortSignal (SIGINT, SIGTERM, timeout). */
export class AbortedError extends XenCrError {
  declare readonly code: 'ABORTED'

  constructor(message = 'operation aborted', options?: XenCrErrorOptions) {
    super('ABORTED', message, 'failure', options)
  }
}

/**
 * An error reported by a XAPI server: `xapiCode` and `params` exactly as the server sent them,
 * plus the method that was called. `code` is `XAPI_<xapiCode>` so it never collides with ours.
 */
export class XapiError extends XenCrError {
  declare readonly code: XapiErrorCode
  readonly xapiCode: string
  readonly params: readonly string[]
  readonly method: string

  constructor(xapiCode: string, params: readonly string[], method: string, options?: XenCrErrorOptions) {
    super(
      `XAPI_${xapiCode}`,
      `${method}: ${xapiCode}${params.length > 0 ? ` (${params.join(', ')})` : ''}`,
      'failure',
      options,
    )
    this.xapiCode = xapiCode
    this.params = params
    this.method = method
  }
}

/** A VHD stream that does not follow the format; `offset` is the byte where it went wrong. */
export class VhdError extends XenCrError {
  readonly offset: number

  constructor(code: ErrorCode, message: string, offset: number, options?: XenCrErrorOptions) {
    super(code, `${message} (at byte ${offset})`, 'failure', options)
    this.offset = offset
  }
}

export function isXenCrError(error: unknown): error is XenCrError {
  return error instanceof XenCrError
}

export function isXapiError(error: unknown, xapiCode?: string): error is XapiError {
  return error instanceof XapiError && (xapiCode === undefined || error.xapiCode === xapiCode)
}

/**
 * The one construction of `VM_NOT_FOUND`: VM `vm` (a uuid, or a ref) is not on `where` (e.g.
 * `source pool "prod"`); `advice` says what to do about it.
 */
export function vmNotFound(vm: string, where: string, advice?: string): ValidationError {
  return new ValidationError('VM_NOT_FOUND', `VM ${vm} is not on ${where}${advice === undefined ? '' : `; ${advice}`}`)
}
