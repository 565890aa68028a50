import { VHD_EPOCH_UNIX } from './layout.js'

/** Seconds since 2000-01-01T00:00:00Z, as VHD footers and headers store time. */
export function toVhdTimestamp(date: Date): number {
  return Math.max(0, Math.floor(date.getTime() / 1000) - VHD_EPOCH_UNIX)
}

export function fromVhdTimestamp(timestamp: number): Date {
  return new Date((timestamp + VHD_EPOCH_UNIX) * 1000)
}
