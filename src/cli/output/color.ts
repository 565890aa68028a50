import type { ColorSupportLevel } from 'chalk'

export type Env = Readonly<Record<string, string | undefined>>

/**
 * The colour level for a stream. Computed here rather than by chalk's import-time detection so
 * that the flags and environment of *this* run decide (tests drive the CLI in-process):
 * `--no-color` and a non-empty `NO_COLOR` (no-color.org) switch colour off, then `FORCE_COLOR`
 * switches it on, otherwise only a TTY that is not `TERM=dumb` gets colour.
 */
export function colorLevel(options: { color: boolean; env: Env; isTTY: boolean }): ColorSupportLevel {
  const { env } = options
  if (!options.color || (env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '')) return 0
  const force = env['FORCE_COLOR']
  if (force !== undefined) {
    if (force === '0' || force === 'false') return 0
    const level = force === '' || force === 'true' ? 1 : Number.parseInt(force, 10)
    if (level === 1 || level === 2 || level === 3) return level
    return 1
  }
  if (!options.isTTY || env['TERM'] === 'dumb') return 0
  if (env['COLORTERM'] === 'truecolor' || env['COLORTERM'] === '24bit') return 3
  if (env['TERM']?.includes('256') === true) return 2
  return 1
}
