/**
 * What a lab API message is: its wire name, declared parameter types (for the parameter-count
 * check and XAPI-style unmarshalling), whether it takes a session and has an `Async.` form, and
 * the handler.
 */
import type { WireValue, DecodedValue } from '../wire/values.js'
import type { LabPool } from '../pool.js'
import type { TaskHandle } from '../tasks.js'
import { xapiFault } from '../fault.js'

/** How a parameter is unmarshalled (reference §1.2: ints may be strings, bools must be booleans). */
export type ParamType = 'string' | 'int' | 'float' | 'bool' | 'datetime' | 'map' | 'set' | 'struct' | 'any'

/** A parameter value after unmarshalling: a decoded value, narrowed to its declared type. */
export type Arg =
  DecodedValue | readonly string[] | Readonly<Record<string, string>> | Readonly<Record<string, DecodedValue>>

/** What a message handler gets besides its arguments. */
export interface CallContext {
  readonly pool: LabPool
  /** ref of the host that received the call */
  readonly hostRef: string
  /** the caller's session ref ('' for session-less messages) */
  readonly sessionRef: string
  /** wire name without `Async.` */
  readonly method: string
  /** set when the call runs as `Async.*` */
  readonly task: TaskHandle | undefined
}

/** One API message. */
export interface MethodDef {
  /** `Class.message` */
  readonly name: string
  readonly params: readonly ParamType[]
  /** how many trailing parameters have defaults and may be omitted */
  readonly defaulted?: number
  /** false for session.login_with_password and system.* */
  readonly session?: boolean
  readonly async?: boolean
  /** removed from the API: answers MESSAGE_REMOVED after the session check */
  readonly removed?: boolean
  /**
   * a datamodel message the lab cannot carry out: it answers XAPI's NOT_IMPLEMENTED after the
   * usual checks, and docs/lab-coverage.md lists it as not implemented
   */
  readonly notImplemented?: boolean
  handler(ctx: CallContext, args: readonly Arg[]): WireValue | Promise<WireValue>
}

/** Every message of the lab API by wire name. */
export class MethodRegistry {
  readonly #methods = new Map<string, MethodDef>()
  readonly #classes = new Set<string>()

  add(def: MethodDef): void {
    this.#methods.set(def.name, def)
    this.#classes.add(def.name.slice(0, def.name.indexOf('.')))
  }

  /** Looks up `Class.message` or its `Class_message` alias. */
  lookup(name: string): MethodDef | undefined {
    const direct = this.#methods.get(name)
    if (direct !== undefined) return direct
    // Class names contain underscores too (VM_metrics), so try every split point.
    for (let i = name.indexOf('_'); i !== -1; i = name.indexOf('_', i + 1)) {
      const cls = name.slice(0, i)
      if (!this.#classes.has(cls)) continue
      const def = this.#methods.get(`${cls}.${name.slice(i + 1)}`)
      if (def !== undefined) return def
    }
    return undefined
  }

  /** Whether `Class.message` itself (not an alias) is registered. */
  has(name: string): boolean {
    return this.#methods.has(name)
  }

  names(): string[] {
    return [...this.#methods.keys()]
  }
}

function typeError(expected: string, value: DecodedValue): never {
  throw xapiFault(
    'INTERNAL_ERROR',
    `Rpc.Runtime_error("${expected}", ${JSON.stringify(value instanceof Date ? value.toISOString() : value)})`,
  )
}

/** Converts a decoded wire value to the declared type, failing as XAPI's unmarshaller does. */
export function coerce(type: ParamType, value: DecodedValue): Arg {
  switch (type) {
    case 'any':
    case 'struct':
      if (
        type === 'struct' &&
        (typeof value !== 'object' ||
          value === null ||
          Array.isArray(value) ||
          value instanceof Date ||
          Buffer.isBuffer(value))
      )
        typeError('struct', value)
      return value
    case 'string':
      if (typeof value === 'string') return value
      return typeError('string', value)
    case 'int':
      if (typeof value === 'number' && Number.isInteger(value)) return value
      if (typeof value === 'string' && /^-?\d+$/.test(value)) return Number(value)
      return typeError('int', value)
    case 'float':
      if (typeof value === 'number') return value
      if (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value))) return Number(value)
      return typeError('float', value)
    case 'bool':
      if (typeof value === 'boolean') return value
      return typeError('bool', value)
    case 'datetime':
      if (value instanceof Date) return value
      if (typeof value === 'string') {
        const date = parseDateParam(value)
        if (date !== undefined) return date
      }
      return typeError('datetime', value)
    case 'set':
      if (Array.isArray(value) && value.every(item => typeof item === 'string')) return value
      return typeError('set', value)
    case 'map': {
      if (
        typeof value !== 'object' ||
        value === null ||
        Array.isArray(value) ||
        value instanceof Date ||
        Buffer.isBuffer(value)
      )
        return typeError('map', value)
      const out: Record<string, string> = {}
      for (const [key, item] of Object.entries(value)) {
        if (typeof item !== 'string') return typeError('string', item)
        out[key] = item
      }
      return out
    }
  }
}

function parseDateParam(text: string): Date | undefined {
  const basic = /^(\d{4})(\d{2})(\d{2})T(\d{2}):(\d{2}):(\d{2})Z?$/.exec(text)
  const date = new Date(
    basic === null ? text : `${basic[1]}-${basic[2]}-${basic[3]}T${basic[4]}:${basic[5]}:${basic[6]}Z`,
  )
  return Number.isNaN(date.getTime()) ? undefined : date
}
