/**
 * Validates `--json` lines against the committed `docs/events.schema.json` with ajv (draft
 * 2020-12, strict). On failure the error names the line's kind and what is wrong, from the
 * definition of that kind alone, which reads better than the whole union's.
 */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'

export const SCHEMA_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'events.schema.json')

interface Validator {
  readonly whole: ValidateFunction
  readonly ajv: Ajv2020
  readonly id: string
}

let cached: Validator | undefined

function validator(): Validator {
  if (cached !== undefined) return cached
  const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as { $id: string }
  const ajv = new Ajv2020({ strict: true, allErrors: true })
  cached = { whole: ajv.compile(schema), ajv, id: schema.$id }
  return cached
}

/** Throws unless `line` (one line of `--json` output) is valid against the schema. */
export function validateEventLine(line: string): Record<string, unknown> {
  const event = JSON.parse(line) as Record<string, unknown>
  const { whole, ajv, id } = validator()
  // ajv's validate is a type guard: narrowing a copy keeps `event` usable after a failure
  const data: unknown = event
  if (whole(data)) return event
  const raw = event['kind']
  const kind = typeof raw === 'string' ? raw : undefined
  const own = kind === undefined ? undefined : ajv.getSchema(`${id}#/$defs/event.${kind}`)
  const errors = own !== undefined && !own(event) ? own.errors : whole.errors
  throw new Error(`--json line of kind ${kind ?? '(none)'} is not valid: ${ajv.errorsText(errors)}\n${line}`)
}
