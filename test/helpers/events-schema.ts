/**
 * Generates `docs/events.schema.json` from the TypeScript types the CLI emits (`OutputEvent` in
 * `src/cli/output/events.ts`), with the TypeScript compiler that builds the project: one
 * definition per event kind, one per named type they use, TSDoc comments as descriptions, and
 * `additionalProperties: false` everywhere, so the schema says exactly what the types say.
 * `src/cli/output/events-schema.test.ts` fails when the committed file differs from what this
 * generates (and rewrites it with XEN_CR_WRITE_SCHEMA=1).
 */
import { dirname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { EVENTS_SCHEMA_VERSION } from '../../src/cli/output/schema-version.js'

export type JsonSchema = { [key: string]: unknown }

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const ENTRY = join(ROOT, 'src', 'cli', 'output', 'events.ts')

/** An ISO 8601 UTC timestamp as `Date.toISOString()` writes it. */
const ISO_TIME = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z$'

class Generator {
  readonly defs: Record<string, JsonSchema> = {}
  private readonly names = new Map<ts.Symbol, string>()
  private readonly inProgress = new Set<ts.Symbol>()

  constructor(private readonly checker: ts.TypeChecker) {}

  /** A declaration of ours (not of a library), so its name is worth a definition. */
  private ownDeclaration(symbol: ts.Symbol | undefined): ts.Declaration | undefined {
    const declaration = symbol?.declarations?.[0]
    if (declaration === undefined) return undefined
    const file = declaration.getSourceFile().fileName
    return file.startsWith(join(ROOT, 'src')) || file.startsWith(`${ROOT}/src`) ? declaration : undefined
  }

  /** The named type a type stands for: an interface of ours, or a type alias of ours without arguments. */
  private namedSymbol(type: ts.Type): ts.Symbol | undefined {
    if (type.aliasSymbol !== undefined) {
      if ((type.aliasTypeArguments?.length ?? 0) > 0) return undefined
      return this.ownDeclaration(type.aliasSymbol) === undefined ? undefined : type.aliasSymbol
    }
    const symbol = type.getSymbol()
    if (symbol === undefined || (symbol.flags & ts.SymbolFlags.Interface) === 0) return undefined
    return this.ownDeclaration(symbol) === undefined ? undefined : symbol
  }

  /** A definition name, unique: a second declaration of the same name is prefixed with its folder. */
  private defName(symbol: ts.Symbol): string {
    const known = this.names.get(symbol)
    if (known !== undefined) return known
    let name = symbol.getName()
    if ([...this.names.values()].includes(name)) {
      const file = relative(join(ROOT, 'src'), symbol.declarations![0]!.getSourceFile().fileName)
      const folder = file.split(sep).slice(-2, -1)[0] ?? 'src'
      name = `${folder[0]!.toUpperCase()}${folder.slice(1)}${name}`
    }
    this.names.set(symbol, name)
    return name
  }

  private describe(symbol: ts.Symbol | undefined): { description?: string } {
    const text = symbol === undefined ? '' : ts.displayPartsToString(symbol.getDocumentationComment(this.checker))
    return text === '' ? {} : { description: text.replace(/\s+/g, ' ').trim() }
  }

  /** The schema of `type`; named types of ours become `$ref`s to a definition. */
  schema(type: ts.Type): JsonSchema {
    const named = this.namedSymbol(type)
    if (named === undefined) return this.inline(type)
    const name = this.defName(named)
    if (this.defs[name] === undefined && !this.inProgress.has(named)) {
      this.inProgress.add(named)
      this.defs[name] = { ...this.describe(named), ...this.inline(type) }
      this.inProgress.delete(named)
    }
    return { $ref: `#/$defs/${name}` }
  }

  private inline(type: ts.Type): JsonSchema {
    const flags = type.flags
    if (flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return {}
    if (type.isStringLiteral()) return { const: type.value }
    if (type.isNumberLiteral()) return { const: type.value }
    if (flags & ts.TypeFlags.BooleanLiteral)
      return { const: (type as { intrinsicName?: string }).intrinsicName === 'true' }
    if (flags & ts.TypeFlags.Boolean) return { type: 'boolean' }
    if (flags & (ts.TypeFlags.String | ts.TypeFlags.TemplateLiteral)) return { type: 'string' }
    if (flags & ts.TypeFlags.Number) return { type: 'number' }
    if (flags & ts.TypeFlags.Null) return { type: 'null' }
    if (type.isUnion()) return this.union(type.types)
    // JSON.stringify writes a Date as its toISOString()
    if (type.getSymbol()?.getName() === 'Date' && this.ownDeclaration(type.getSymbol()) === undefined)
      return { type: 'string', pattern: ISO_TIME }
    // a branded string (`Ref<'VM'>`, `Uuid<'VM'>`) is a string on the wire
    if (type.isIntersection() && type.types.some(t => t.flags & ts.TypeFlags.String)) return { type: 'string' }
    if (this.checker.isArrayType(type) || this.checker.isTupleType(type)) {
      const [item] = this.checker.getTypeArguments(type as ts.TypeReference)
      return { type: 'array', items: item === undefined ? {} : this.schema(item) }
    }
    if (flags & ts.TypeFlags.Object || type.isIntersection()) return this.object(type)
    throw new Error(`events schema: no JSON form for type ${this.checker.typeToString(type)}`)
  }

  private union(members: readonly ts.Type[]): JsonSchema {
    const defined = members.filter(t => !(t.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Void)))
    const literals = defined.filter((t): t is ts.StringLiteralType => t.isStringLiteral())
    const booleans = defined.filter(t => t.flags & ts.TypeFlags.BooleanLiteral)
    const rest = defined.filter(t => !t.isStringLiteral() && !booleans.includes(t))
    const parts: JsonSchema[] = []
    if (literals.length > 0)
      parts.push(literals.length === 1 ? this.inline(literals[0]!) : { enum: literals.map(t => t.value) })
    if (booleans.length === 2) parts.push({ type: 'boolean' })
    else for (const b of booleans) parts.push(this.inline(b))
    for (const t of rest) parts.push(this.schema(t))
    return parts.length === 1 ? parts[0]! : { anyOf: parts }
  }

  private object(type: ts.Type): JsonSchema {
    const properties: Record<string, JsonSchema> = {}
    const required: string[] = []
    for (const property of this.checker.getPropertiesOfType(type)) {
      const declaration = property.valueDeclaration ?? property.declarations?.[0]
      const propertyType =
        declaration === undefined
          ? this.checker.getTypeOfSymbol(property)
          : this.checker.getTypeOfSymbolAtLocation(property, declaration)
      if (propertyType.getCallSignatures().length > 0)
        throw new Error(`events schema: ${property.getName()} of ${this.checker.typeToString(type)} is a function`)
      const optional =
        (property.flags & ts.SymbolFlags.Optional) !== 0 ||
        (propertyType.isUnion() && propertyType.types.some(t => t.flags & ts.TypeFlags.Undefined))
      properties[property.getName()] = { ...this.describe(property), ...this.schema(propertyType) }
      if (!optional) required.push(property.getName())
    }
    const index = this.checker.getIndexInfosOfType(type)[0]
    return {
      type: 'object',
      ...(Object.keys(properties).length === 0 ? {} : { properties }),
      ...(required.length === 0 ? {} : { required }),
      additionalProperties: index === undefined ? false : this.schema(index.type),
    }
  }

  /** An event: always its own object (never a `$ref`), so that the envelope fields can join it. */
  event(type: ts.Type): JsonSchema {
    const named = this.namedSymbol(type)
    return { ...this.memberComment(type), ...(named === undefined ? {} : this.describe(named)), ...this.object(type) }
  }

  /** The TSDoc comment written just before a union member (`/** … *\/ | { kind: … }`), if any. */
  private memberComment(type: ts.Type): { description?: string } {
    const node: ts.Node | undefined = type.getSymbol()?.declarations?.[0]
    const union = node?.parent
    if (node === undefined || union === undefined || !ts.isUnionTypeNode(union)) return {}
    const index = union.types.findIndex((member: ts.Node) => member === node)
    const text = node.getSourceFile().text
    const before = text.slice(index === 0 ? union.pos : union.types[index - 1]!.end, node.getStart())
    const comment = /\/\*\*([\s\S]*?)\*\//.exec(before)?.[1]
    if (comment === undefined) return {}
    return {
      description: comment
        .replace(/^\s*\*\s?/gm, ' ')
        .replace(/\s+/g, ' ')
        .trim(),
    }
  }
}

/** The schema of every `--json` line. */
export function generateEventsSchema(): JsonSchema {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    join(ROOT, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: diagnostic => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'))
      },
    },
  )
  if (parsed === undefined) throw new Error('events schema: tsconfig.json cannot be read')
  const program = ts.createProgram([ENTRY], { ...parsed.options, noEmit: true })
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(ENTRY)
  const alias = source?.statements.find(
    (s): s is ts.TypeAliasDeclaration => ts.isTypeAliasDeclaration(s) && s.name.text === 'OutputEvent',
  )
  if (alias === undefined) throw new Error('events schema: no OutputEvent in events.ts')
  const union = checker.getTypeAtLocation(alias.name)
  if (!union.isUnion()) throw new Error('events schema: OutputEvent is not a union')

  const generator = new Generator(checker)
  const events: Record<string, JsonSchema> = {}
  for (const member of union.types) {
    const kindSymbol = member.getProperty('kind')
    const kindType = kindSymbol === undefined ? undefined : checker.getTypeOfSymbol(kindSymbol)
    if (kindType === undefined || !kindType.isStringLiteral())
      throw new Error(`events schema: ${checker.typeToString(member)} has no literal kind`)
    events[kindType.value] = generator.event(member)
  }
  const kinds = Object.keys(events).sort()
  const envelope = {
    schemaVersion: { const: EVENTS_SCHEMA_VERSION, description: 'the version of this schema the line follows' },
    time: { type: 'string', pattern: ISO_TIME, description: 'when the event was emitted (UTC, ISO 8601)' },
  }
  const defs: Record<string, JsonSchema> = {}
  for (const kind of kinds) {
    const event = events[kind]!
    // every line also carries the envelope fields, which the event types do not declare
    defs[`event.${kind}`] = {
      ...event,
      properties: { ...(event['properties'] as JsonSchema), ...envelope },
      required: [...(event['required'] as string[]), 'time', 'schemaVersion'],
    }
  }
  for (const name of Object.keys(generator.defs).sort()) defs[name] = generator.defs[name]!
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: `urn:xen-cr:events:v${EVENTS_SCHEMA_VERSION}`,
    title: 'xen-cr --json output',
    description:
      'With --json every line xen-cr writes is one JSON object: an event, told apart by `kind`, plus `time` and `schemaVersion`. Errors (`kind: "error"`) go to stderr, everything else to stdout. Generated from the TypeScript types in src/cli/output/events.ts; schemaVersion changes when a kind or field is removed or changes meaning, not when one is added.',
    type: 'object',
    required: ['kind', 'time', 'schemaVersion'],
    properties: { kind: { enum: kinds }, ...envelope },
    allOf: kinds.map(kind => ({
      if: { properties: { kind: { const: kind } }, required: ['kind'] },
      then: { $ref: `#/$defs/event.${kind}` },
    })),
    $defs: defs,
  }
}
