#!/usr/bin/env node
// Builds src/lab/rpc/datamodel.json from scripts/datamodel/xen-api-datamodel.txt (a transcript of the
// XAPI datamodel, see its header for the xen-api files and commits it was read from): every field of
// every class the lab serves with its qualifier, and every message a client can call, explicit ones
// as declared and the ones XAPI generates from the field list (Dm_api / gen_api: get_record,
// get_by_uuid, get_by_name_label, get_<field>, set_<field>, add_to_/remove_from_, add_/remove_,
// get_all*, create/destroy).
//
//   node scripts/gen-datamodel.mjs            write the JSON
//   node scripts/gen-datamodel.mjs --check    exit 1 if the JSON on disk is not what it would write
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as prettier from 'prettier'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const sourcePath = join(root, 'scripts/datamodel/xen-api-datamodel.txt')
const outPath = join(root, 'src/lab/rpc/datamodel.json')

/** The wire type a lab parameter of this datamodel type is unmarshalled as. */
function paramType(type) {
  if (type === 's' || type.startsWith('r:')) return 'string'
  if (type === 'i') return 'int'
  if (type === 'f') return 'float'
  if (type === 'b') return 'bool'
  if (type === 'd') return 'datetime'
  if (type === 'ss' || type === 'si' || type.startsWith('sr:')) return 'set'
  if (type === 'm') return 'map'
  if (type === 'rec') return 'struct'
  return 'any'
}

export function parse(text) {
  const classes = []
  let current
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const words = line.split(/\s+/)
    const where = `line ${index + 1}`
    if (words[0] === '@class') {
      current = { name: words[1], flags: new Set(words.slice(2)), fields: [], messages: [] }
      classes.push(current)
    } else if (words[0] === 'f') {
      if (current === undefined) throw new Error(`${where}: field outside a class`)
      const [, name, qualifier, type, ...rest] = words
      if (!['RW', 'SRO', 'DRO'].includes(qualifier)) throw new Error(`${where}: bad qualifier ${qualifier}`)
      current.fields.push({ name, qualifier, type, removed: rest.includes('removed') })
    } else if (words[0] === 'm') {
      if (current === undefined) throw new Error(`${where}: message outside a class`)
      const [, name, ...rest] = words
      const params = []
      const errors = []
      const flags = new Set()
      let inErrors = false
      for (const word of rest) {
        if (word === '!') inErrors = true
        else if (word.startsWith('-') || ['removed', 'deprecated', 'internal'].includes(word)) flags.add(word)
        else if (inErrors) errors.push(word)
        else {
          const colon = word.indexOf(':')
          if (colon === -1) throw new Error(`${where}: bad parameter ${word}`)
          const optional = word.endsWith('?')
          const type = word.slice(colon + 1, optional ? -1 : undefined)
          params.push({ name: word.slice(0, colon), type, optional })
        }
      }
      current.messages.push({ name, params, errors, flags })
    } else throw new Error(`${where}: cannot read "${line}"`)
  }
  return classes
}

function message(cls, name, params, options) {
  return {
    name,
    params: params.map(p => ({ name: p.name, type: paramType(p.type), ...(p.optional ? { optional: true } : {}) })),
    session: options.session ?? true,
    async: options.async ?? false,
    ...(options.errors?.length ? { errors: options.errors } : {}),
    ...(options.lifecycle === undefined ? {} : { lifecycle: options.lifecycle }),
    ...(options.internal ? { internal: true } : {}),
    kind: options.kind,
    ...(options.field === undefined ? {} : { field: options.field }),
  }
}

const SETTER_PREFIXES = ['set_', 'add_to_', 'remove_from_', 'add_', 'remove_']

/** The field an explicit message sets (`set_VCPUs_max` → VCPUs_max), if it is one of the class's. */
function setterField(fields, name) {
  for (const prefix of SETTER_PREFIXES) {
    if (!name.startsWith(prefix)) continue
    const field = fields.find(f => f.name === name.slice(prefix.length))
    if (field !== undefined) return field.name
  }
  return undefined
}

export function expand(classes) {
  const out = {}
  for (const cls of classes) {
    const self = { name: 'self', type: `r:${cls.name}` }
    const generated = []
    const db = cls.flags.has('db')
    if (db) {
      generated.push(message(cls, 'get_record', [self], { kind: 'record' }))
      if (cls.fields.some(f => f.name === 'uuid'))
        generated.push(message(cls, 'get_by_uuid', [{ name: 'uuid', type: 's' }], { kind: 'record' }))
      if (cls.fields.some(f => f.name === 'name_label'))
        generated.push(message(cls, 'get_by_name_label', [{ name: 'label', type: 's' }], { kind: 'record' }))
    }
    if (cls.flags.has('getall')) {
      generated.push(message(cls, 'get_all', [], { kind: 'record' }))
      generated.push(message(cls, 'get_all_records', [], { kind: 'record' }))
      generated.push(message(cls, 'get_all_records_where', [{ name: 'expr', type: 's' }], { kind: 'record' }))
    }
    if (cls.flags.has('ctor')) {
      generated.push(message(cls, 'create', [{ name: 'args', type: 'rec' }], { async: true, kind: 'constructor' }))
      generated.push(message(cls, 'destroy', [self], { async: true, kind: 'constructor' }))
    }
    if (db) {
      for (const f of cls.fields) {
        const removed = f.removed ? { lifecycle: 'removed' } : {}
        generated.push(message(cls, `get_${f.name}`, [self], { kind: 'getter', field: f.name, ...removed }))
        if (f.qualifier !== 'RW') continue
        generated.push(
          message(cls, `set_${f.name}`, [self, { name: 'value', type: f.type }], { kind: 'setter', field: f.name }),
        )
        if (f.type === 'm') {
          const key = { name: 'key', type: 's' }
          generated.push(
            message(cls, `add_to_${f.name}`, [self, key, { name: 'value', type: 's' }], {
              kind: 'setter',
              field: f.name,
            }),
          )
          generated.push(message(cls, `remove_from_${f.name}`, [self, key], { kind: 'setter', field: f.name }))
        } else if (f.type === 'ss' || f.type.startsWith('sr:')) {
          const item = { name: 'value', type: f.type === 'ss' ? 's' : f.type.slice(1) }
          generated.push(message(cls, `add_${f.name}`, [self, item], { kind: 'setter', field: f.name }))
          generated.push(message(cls, `remove_${f.name}`, [self, item], { kind: 'setter', field: f.name }))
        }
      }
    }
    const explicit = cls.messages.map(m => {
      const field = setterField(cls.fields, m.name)
      return message(cls, m.name, m.params, {
        session: !m.flags.has('-session'),
        async: !cls.flags.has('noasync') && !m.flags.has('-async'),
        errors: m.errors,
        lifecycle: m.flags.has('removed') ? 'removed' : m.flags.has('deprecated') ? 'deprecated' : undefined,
        internal: m.flags.has('internal'),
        kind: field === undefined ? 'custom' : 'setter',
        field,
      })
    })
    // An explicit message replaces a generated one of the same name (SR.set_name_label and the like).
    const names = new Set(explicit.map(m => m.name))
    const messages = [...generated.filter(m => !names.has(m.name)), ...explicit]
    out[cls.name] = {
      fields: cls.fields.map(f => ({
        name: f.name,
        qualifier: f.qualifier,
        type: f.type,
        ...(f.removed ? { removed: true } : {}),
      })),
      messages,
    }
  }
  return out
}

export async function render(text) {
  const header = text
    .split('\n')
    .filter(line => line.startsWith('#'))
    .slice(0, 6)
    .map(line => line.replace(/^#\s?/, ''))
  const json = JSON.stringify({
    generatedBy: 'scripts/gen-datamodel.mjs',
    source: header,
    classes: expand(parse(text)),
  })
  // formatted as the repository's prettier formats it, so that format:check and --check agree
  const options = (await prettier.resolveConfig(outPath)) ?? {}
  return prettier.format(json, { ...options, parser: 'json', filepath: outPath })
}

const text = readFileSync(sourcePath, 'utf8')
const json = await render(text)
if (process.argv.includes('--check')) {
  let onDisk = ''
  try {
    onDisk = readFileSync(outPath, 'utf8')
  } catch {
    // missing: stale
  }
  if (onDisk !== json) {
    console.error(`${outPath} is stale: run node scripts/gen-datamodel.mjs`)
    process.exit(1)
  }
} else {
  writeFileSync(outPath, json)
  const classes = JSON.parse(json).classes
  for (const [name, cls] of Object.entries(classes))
    console.log(`${name}: ${cls.fields.length} fields, ${cls.messages.length} messages`)
}
