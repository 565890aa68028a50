/**
 * A strict parser of the Prometheus text exposition format 0.0.4 (what node_exporter's textfile
 * collector reads), written from the format's description rather than from the code that writes
 * our files, so a test reading a metrics file back checks the file and not our own assumptions.
 * It throws on anything the format does not allow: a sample before its family's TYPE, a family
 * split in two, a TYPE or HELP given twice, a bad name, label or value, a duplicate series, a
 * missing final newline.
 */

export interface Sample {
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface MetricFamily {
  readonly name: string
  readonly help: string | undefined
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'
  readonly samples: Sample[]
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

class ParseError extends Error {
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`)
  }
}

/** Go's strconv.ParseFloat, as the format defines values. */
function parseFloatStrict(text: string, line: number): number {
  if (/^[+-]?inf$/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity
  if (/^nan$/i.test(text)) return Number.NaN
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new ParseError(line, `bad value "${text}"`)
  return Number(text)
}

/** Reads `{a="x",b="y"}` from `text` at `start`; returns the labels and the index after `}`. */
function parseLabels(text: string, start: number, line: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {}
  let i = start + 1
  for (;;) {
    if (text[i] === '}') return { labels, end: i + 1 }
    const eq = text.indexOf('=', i)
    if (eq < 0) throw new ParseError(line, 'label without "="')
    const name = text.slice(i, eq)
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new ParseError(line, `bad label name "${name}"`)
    if (Object.hasOwn(labels, name)) throw new ParseError(line, `label "${name}" given twice`)
    if (text[eq + 1] !== '"') throw new ParseError(line, `label "${name}" value is not quoted`)
    let value = ''
    let j = eq + 2
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') {
        const next = text[++j]
        if (next === 'n') value += '\n'
        else if (next === '\\' || next === '"') value += next
        else throw new ParseError(line, `bad escape "\\${next}" in label "${name}"`)
      } else {
        value += text[j]
      }
    }
    if (j >= text.length) throw new ParseError(line, `label "${name}" value is not closed`)
    labels[name] = value
    i = j + 1
    if (text[i] === ',') i++
    else if (text[i] !== '}') throw new ParseError(line, `expected "," or "}" after label "${name}"`)
  }
}

/** Parses a whole exposition; families in file order, keyed by name. */
export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  if (text !== '' && !text.endsWith('\n')) throw new ParseError(0, 'the last line does not end with a newline')
  const families = new Map<string, MetricFamily>()
  const closed = new Set<string>()
  const series = new Set<string>()
  let current: string | undefined
  const family = (name: string, line: number): MetricFamily => {
    if (!METRIC_NAME.test(name)) throw new ParseError(line, `bad metric name "${name}"`)
    if (current !== name) {
      if (closed.has(name)) throw new ParseError(line, `family ${name} is split in two`)
      if (current !== undefined) closed.add(current)
      current = name
    }
    let found = families.get(name)
    if (found === undefined) {
      found = { name, help: undefined, type: 'untyped', samples: [] }
      families.set(name, found)
    }
    return found
  }
  text.split('\n').forEach((raw, index) => {
    const line = index + 1
    if (raw.trim() === '') return
    if (raw.startsWith('#')) {
      const meta = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(raw)
      if (meta === null) return // a comment
      const [, keyword, name = '', rest = ''] = meta
      const f = family(name, line)
      if (keyword === 'HELP') {
        if (f.help !== undefined) throw new ParseError(line, `second HELP for ${name}`)
        Object.assign(f, { help: rest.replace(/\\(n|\\)/g, (_, c: string) => (c === 'n' ? '\n' : '\\')) })
      } else {
        if (!TYPES.has(rest)) throw new ParseError(line, `unknown type "${rest}" for ${name}`)
        if (f.samples.length > 0 || f.type !== 'untyped')
          throw new ParseError(line, `TYPE of ${name} after its samples or twice`)
        Object.assign(f, { type: rest })
      }
      return
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(raw)
    if (nameMatch === null) throw new ParseError(line, `not a sample: "${raw}"`)
    const name = nameMatch[0]
    let at = name.length
    let labels: Record<string, string> = {}
    if (raw[at] === '{') ({ labels, end: at } = parseLabels(raw, at, line))
    const rest = raw.slice(at)
    const parts = rest.trim().split(/[ \t]+/)
    if (!/^[ \t]/.test(rest) || parts.length < 1 || parts.length > 2) throw new ParseError(line, `bad sample "${raw}"`)
    const value = parseFloatStrict(parts[0]!, line)
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new ParseError(line, `bad timestamp "${parts[1]}"`)
    const f = family(name, line)
    if (f.type !== 'untyped' && f.type !== 'gauge' && f.type !== 'counter')
      throw new ParseError(line, `${f.type} samples are not expected here`)
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`
    if (series.has(key)) throw new ParseError(line, `duplicate series ${key}`)
    series.add(key)
    f.samples.push({ labels, value })
  })
  return families
}

/** The value of the one sample of `name` whose labels include `match`; throws when not exactly one. */
export function sampleValue(
  families: ReadonlyMap<string, MetricFamily>,
  name: string,
  match: Readonly<Record<string, string>> = {},
): number {
  const found = (families.get(name)?.samples ?? []).filter(s =>
    Object.entries(match).every(([k, v]) => s.labels[k] === v),
  )
  if (found.length !== 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(match)}`)
  return found[0]!.value
}
