/**
 * The lab's own errors, for whoever runs the lab rather than for its XAPI clients (they only
 * ever see a {@link XapiFault} on the wire). Each has a stable `code` that callers match on; the
 * CLI front (`src/cli/lab.ts`) maps them into xen-cr's hierarchy and exit codes, so the lab does
 * not import the client's error classes.
 */

/** A spec, state directory or control-API argument that whoever runs the lab got wrong. */
export type LabSetupCode =
  'LAB_SPEC_INVALID' | 'LAB_SPEC_UNREADABLE' | 'LAB_STATE_CORRUPT' | 'LAB_OBJECT_UNKNOWN' | 'LAB_DIR_IN_USE'

/** What the sparse disk store refuses. */
export type LabDiskCode =
  | 'LAB_STORE_CORRUPT'
  | 'LAB_STORE_CLOSED'
  | 'LAB_DISK_EXISTS'
  | 'LAB_DISK_NOT_FOUND'
  | 'LAB_DISK_READ_ONLY'
  | 'LAB_DISK_RANGE'
  | 'LAB_DISK_SHRINK'

/** How an XVA (tar of `ova.xml` and disk chunks) received by the lab breaks the format. */
export type XvaFormatCode =
  | 'XVA_TRUNCATED'
  | 'XVA_BAD_HEADER'
  | 'XVA_MEMBER_TOO_LARGE'
  | 'XVA_BAD_METADATA'
  | 'XVA_MISSING_OBJECT'
  | 'XVA_INVALID'
  | 'XVA_BEYOND_DISK'
  | 'XVA_CHECKSUM_MISMATCH'

export type LabErrorCode = LabSetupCode | LabDiskCode | XvaFormatCode

export interface LabErrorOptions {
  cause?: unknown
}

export class LabError extends Error {
  readonly code: LabErrorCode

  constructor(code: LabErrorCode, message: string, options: LabErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
  }

  override get name(): string {
    return this.constructor.name
  }
}

/** A spec, state file or control-API argument that is wrong; `file` names the file when there is one. */
export class LabSetupError extends LabError {
  declare readonly code: LabSetupCode
  readonly file: string | undefined

  constructor(code: LabSetupCode, message: string, context: { file?: string } = {}, options?: LabErrorOptions) {
    super(code, message, options)
    this.file = context.file
  }
}

/** A disk-store operation refused (a missing disk, a read-only snapshot, a range outside the disk). */
export class LabDiskError extends LabError {
  declare readonly code: LabDiskCode

  constructor(code: LabDiskCode, message: string, options?: LabErrorOptions) {
    super(code, message, options)
  }
}

/** An XVA that does not follow the format; `offset` is the byte where it went wrong. */
export class XvaFormatError extends LabError {
  declare readonly code: XvaFormatCode
  readonly offset: number
  /** the message without the offset: what XAPI puts in an `IMPORT_ERROR` */
  readonly detail: string

  constructor(code: XvaFormatCode, detail: string, offset: number, options?: LabErrorOptions) {
    super(code, `${detail} (at byte ${offset})`, options)
    this.offset = offset
    this.detail = detail
  }
}

export function isLabError(error: unknown): error is LabError {
  return error instanceof LabError
}

/**
 * The string `code` of an error from elsewhere (Node's `ENOENT`, a `VHD_*` error of the VHD
 * library the lab shares with the client), matched by code since the lab does not import the
 * client's classes.
 */
export function errorCode(error: unknown): string | undefined {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined
  return typeof code === 'string' ? code : undefined
}
