/**
 * The `--metrics-file` of `run` and `list`: Prometheus text format for node_exporter's textfile
 * collector, which reads every `*.prom` file of its folder at each scrape. The file is replaced
 * atomically (a temporary file in the same folder, fsynced, renamed over it), so a scrape sees the
 * previous file or the new one, never half of one; the temporary name does not end in `.prom`, so
 * the collector never reads it.
 */
import { randomUUID } from 'node:crypto'
import { open, readFile, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { ConfigError } from '../../errors.js'

function errorCode(error: unknown): string {
  return error instanceof Error && 'code' in error ? String(error.code) : 'error'
}

function unwritable(file: string, error: unknown): ConfigError {
  return new ConfigError(
    'METRICS_FILE_UNWRITABLE',
    `metrics file ${file} cannot be written (${errorCode(error)}); check that its folder exists and is writable`,
    { file },
    { cause: error },
  )
}

/** Replaces `file` with `text` atomically. @throws ConfigError `METRICS_FILE_UNWRITABLE` */
export async function writeMetricsFile(file: string, text: string): Promise<void> {
  const temp = join(dirname(file), `.${basename(file)}.${randomUUID()}.tmp`)
  try {
    const handle = await open(temp, 'wx', 0o644)
    try {
      await handle.writeFile(text)
      // on disk before the rename makes it the file, or a crash could leave it empty
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, file)
  } catch (error) {
    await unlink(temp).catch(() => undefined)
    throw unwritable(file, error)
  }
}

/** One sample of a metrics file. */
export interface MetricSample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$/
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/y

function unescapeLabel(value: string): string {
  return value.replace(/\\(.)/g, (_, char: string) => (char === 'n' ? '\n' : char))
}

function parseLabels(text: string): Record<string, string> | undefined {
  const labels: Record<string, string> = {}
  LABEL.lastIndex = 0
  while (LABEL.lastIndex < text.length) {
    const match = LABEL.exec(text)
    if (match === null) return undefined
    labels[match[1]!] = unescapeLabel(match[2]!)
  }
  return labels
}

function parseValue(text: string): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY
  if (text === '-Inf') return Number.NEGATIVE_INFINITY
  return text === 'NaN' ? Number.NaN : Number(text)
}

/**
 * The samples of a metrics file this program wrote earlier, so that a run can carry over what it
 * did not measure this time (the jobs `run --due` found not due). An absent file has none; a line
 * that is not a sample (a comment, or a hand edit) is skipped.
 */
export async function readMetricsSamples(file: string): Promise<MetricSample[]> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return []
    throw new ConfigError(
      'METRICS_FILE_UNREADABLE',
      `metrics file ${file} cannot be read (${errorCode(error)}); check its permissions`,
      { file },
      { cause: error },
    )
  }
  const samples: MetricSample[] = []
  for (const line of text.split('\n')) {
    const match = SAMPLE.exec(line.trim())
    if (match === null || line.startsWith('#')) continue
    const labels = parseLabels(match[2] ?? '')
    const value = parseValue(match[3]!)
    if (labels === undefined || (Number.isNaN(value) && match[3] !== 'NaN')) continue
    samples.push({ name: match[1]!, labels, value })
  }
  return samples
}
