/**
 * A pass-through that counts the bytes flowing through it and reports them, throttled to one
 * report per `everyBytes` (plus one at the end) so progress events do not flood the CLI.
 */
import { Transform, type TransformCallback } from 'node:stream'

export interface ByteCounter extends Transform {
  readonly bytes: number
}

export function createByteCounter(onProgress?: (bytes: number) => void, everyBytes = 4 * 1024 * 1024): ByteCounter {
  let bytes = 0
  let reported = 0
  const stream = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      bytes += chunk.length
      if (onProgress !== undefined && bytes - reported >= everyBytes) {
        reported = bytes
        onProgress(bytes)
      }
      callback(null, chunk)
    },
    flush(callback: TransformCallback) {
      if (onProgress !== undefined && reported !== bytes) onProgress(bytes)
      callback()
    },
  })
  return Object.defineProperty(stream, 'bytes', { get: () => bytes }) as ByteCounter
}
