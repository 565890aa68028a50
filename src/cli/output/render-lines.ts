import type { EventClass } from './formatter.js'
import type { OutputStream } from './renderer.js'

export function writeLines(stream: OutputStream, lines: readonly string[], prefix = ''): void {
  for (const line of lines) stream.write(`${prefix}${line}\n`)
}

/** Warnings and errors go to stderr. */
export function isDiagnostic(cls: EventClass): boolean {
  return cls === 'warning' || cls === 'error'
}

/** True when the key is `ancestor` or under it (`ancestor/…`). */
export function isUnder(key: string, ancestor: string): boolean {
  return key === ancestor || key.startsWith(`${ancestor}/`)
}
