import { createRequire } from 'node:module'
import type { ChalkInstance } from 'chalk'
import type Table from 'cli-table3'
import { formatBytes, formatRate } from '../../jobs/rate.js'
import type { VmResult } from '../../replication/events.js'
import { table, type FormatContext } from './formatter.js'

/** `45s`, `3m05s`, `2h10m`. */
export function formatDuration(milliseconds: number): string {
  const seconds = Math.round(milliseconds / 1000)
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`
}

// Required when a summary is drawn, not when the CLI starts: most commands never draw one
// (issue 11). cli-table3 is CommonJS, so a synchronous require keeps the formatters synchronous.
const require = createRequire(import.meta.url)

const HEAD = ['VM', 'MODE', 'DISKS', 'SENT', 'DURATION', 'AVG RATE', 'RESULT']

/** A VM's bytes over its whole pass (snapshot and replica assembly included), as its owner sees it. */
function averageRate(bytes: number, durationMs: number): string {
  return durationMs <= 0 ? '-' : formatRate(Math.round((bytes * 1000) / durationMs))
}

function row(result: VmResult): string[] {
  if (result.status === 'failed')
    return [result.vm.name, '-', '-', '-', formatDuration(result.durationMs), '-', `failed [${result.error.code}]`]
  if (result.status === 'skipped')
    return [result.vm.name, '-', '-', '-', '-', '-', result.reason === 'leased' ? 'leased elsewhere' : 'done elsewhere']
  return [
    result.vm.name,
    result.mode,
    String(result.disks),
    formatBytes(result.bytes),
    formatDuration(result.durationMs),
    averageRate(result.bytes, result.durationMs),
    'ok',
  ]
}

/**
 * The end of a pass, one row per VM: a boxed table on a terminal, aligned plain columns in a
 * log (each line then gets its timestamp like every other).
 */
export function passSummary(
  results: readonly VmResult[],
  style: ChalkInstance,
  context: Pick<FormatContext, 'medium'>,
): string[] {
  if (results.length === 0) return []
  const rows = results.map(row)
  if (context.medium === 'plain') return table([HEAD, ...rows])
  // cli-table3 colours the head and borders itself; colour is chalk's job here (NO_COLOR, --no-color)
  const TableClass = require('cli-table3') as typeof Table
  const boxed = new TableClass({ head: HEAD.map(h => style.bold(h)), style: { head: [], border: [], compact: true } })
  for (const [index, cells] of rows.entries()) {
    const status = results[index]?.status
    const paint = status === 'success' ? style.green : status === 'skipped' ? style.yellow : style.red
    boxed.push(cells.map((cell, column) => (column === cells.length - 1 ? paint(cell) : cell)))
  }
  return boxed.toString().split('\n')
}
