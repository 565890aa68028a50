import { Transform, type TransformCallback } from 'node:stream'
import { OperationError, type ErrorCode } from '../errors.js'
import { VhdExtentProbe } from './vhd-extent.js'

/** Progress of a disk transfer: bytes so far and, when known, the total. */
export interface TransferProgress {
  readonly bytes: number
  readonly total?: number
}

export interface TransferMeterOptions {
  /** what flows, for messages: e.g. `export of VDI OpaqueRef:… from http://host/export_raw_vdi/` */
  readonly what: string
  /** exact byte count the stream must have (Content-Length contract) */
  readonly expected?: number
  /** reported as `total`; defaults to `expected` */
  readonly total?: number
  readonly onProgress?: (progress: TransferProgress) => void
  /**
   * Fail if the body starts with `HTTP/`: some hosts write an error response inside a 200 body
   * (xapi-project/xen-api#4603), which would otherwise pass for disk data.
   */
  readonly rejectEmbeddedHttp?: boolean
  /**
   * The stream is a VHD of unannounced length: learn its minimum length from its BAT, report
   * it as the total and fail a stream that ends before it.
   */
  readonly vhd?: boolean
  /** code of the error for a wrong length (default `TRANSFER_LENGTH_MISMATCH`) */
  readonly lengthErrorCode?: ErrorCode
}

// Progress is reported at most once per this many bytes and this many ms (and at the end): a
// renderer needs a few reports a second, not one per MiB of a 300 MiB/s stream.
const REPORT_EVERY = 1024 * 1024
const REPORT_EVERY_MS = 100
/** Bytes each side holds before it pushes back: a few 64 KiB socket reads. */
const HIGH_WATER_MARK = 256 * 1024

/**
 * Pass-through that counts bytes, reports progress, and enforces the announced length: more
 * bytes than announced fail at once, fewer fail at the end.
 */
export class TransferMeter extends Transform {
  bytes = 0
  readonly #options: TransferMeterOptions
  #reported = -1
  #reportedAt = 0
  #head = ''
  readonly #probe: VhdExtentProbe | undefined

  constructor(options: TransferMeterOptions) {
    super({ readableHighWaterMark: HIGH_WATER_MARK, writableHighWaterMark: HIGH_WATER_MARK })
    this.#options = options
    this.#probe = options.vhd === true ? new VhdExtentProbe() : undefined
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const options = this.#options
    if (options.rejectEmbeddedHttp === true && this.#head.length < 5) {
      this.#head += chunk.subarray(0, 5 - this.#head.length).toString('latin1')
      if (this.#head.length >= 5 && this.#head === 'HTTP/') {
        callback(
          new OperationError(
            'TRANSFER_NOT_DISK_DATA',
            `${options.what}: the host sent an HTTP response inside the body instead of disk data; check the host's logs`,
          ),
        )
        return
      }
    }
    this.#probe?.feed(chunk)
    this.bytes += chunk.length
    if (options.expected !== undefined && this.bytes > options.expected) {
      callback(
        new OperationError(
          options.lengthErrorCode ?? 'TRANSFER_LENGTH_MISMATCH',
          `${options.what}: more than the announced ${options.expected} bytes`,
        ),
      )
      return
    }
    if (options.onProgress !== undefined && this.bytes - this.#reported >= REPORT_EVERY) {
      const now = Date.now()
      if (this.#reported < 0 || now - this.#reportedAt >= REPORT_EVERY_MS) {
        this.#reportedAt = now
        this.#report()
      }
    }
    callback(null, chunk)
  }

  override _flush(callback: TransformCallback): void {
    const options = this.#options
    if (options.expected !== undefined && this.bytes !== options.expected) {
      callback(
        new OperationError(
          options.lengthErrorCode ?? 'TRANSFER_LENGTH_MISMATCH',
          `${options.what}: ended after ${this.bytes} of ${options.expected} bytes`,
        ),
      )
      return
    }
    const minimum = this.#probe?.minimumLength
    if (minimum !== undefined && this.bytes < minimum) {
      callback(
        new OperationError(
          options.lengthErrorCode ?? 'TRANSFER_LENGTH_MISMATCH',
          `${options.what}: the VHD ended after ${this.bytes} bytes, its BAT needs ${minimum}`,
        ),
      )
      return
    }
    this.#report()
    callback()
  }

  #report(): void {
    this.#reported = this.bytes
    const total = this.#options.total ?? this.#options.expected ?? this.#probe?.minimumLength
    this.#options.onProgress?.(total === undefined ? { bytes: this.bytes } : { bytes: this.bytes, total })
  }
}
