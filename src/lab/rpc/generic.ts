/**
 * The messages every class gets from its field list (reference §3.1): get_all_records, get_all,
 * get_record, get_by_uuid, get_by_name_label, get_<field>, set_<field> for RW fields,
 * add_to_/remove_from_ for RW maps and add_/remove_ for RW sets.
 */
import { compileQuery } from '../db/filter-expr.js'
import { xapiFault } from '../fault.js'
import { SCHEMA, type ClassSpec, type FieldSpec, type StoredValue } from '../db/schema.js'
import { formatXapiDate, type WireValue } from '../wire/values.js'
import type { Arg, MethodRegistry, ParamType } from './registry.js'

/** vm_operations values: the keys `VM.blocked_operations` accepts (reference §1.6). */
export const VM_OPERATIONS = new Set(
  `snapshot clone copy create_template revert checkpoint snapshot_with_quiesce provision start start_on pause unpause
  clean_shutdown clean_reboot hard_shutdown power_state_reset hard_reboot suspend csvm resume resume_on pool_migrate
  migrate_send get_boot_record send_sysrq send_trigger query_services shutdown call_plugin changing_memory_live
  awaiting_memory_live changing_dynamic_range changing_static_range changing_memory_limits changing_shadow_memory
  changing_shadow_memory_live changing_VCPUs changing_VCPUs_live changing_NVRAM assert_operation_valid data_source_op
  update_allowed_operations make_into_template import export metadata_export reverting destroy create_vtpm`.split(
    /\s+/,
  ),
)

function paramTypeOf(field: FieldSpec): ParamType {
  switch (field.type.kind) {
    case 'i':
      return 'int'
    case 'f':
      return 'float'
    case 'b':
      return 'bool'
    case 'd':
      return 'datetime'
    case 'm':
      return 'map'
    case 'ss':
    case 'sr':
    case 'si':
    case 'rel':
      return 'set'
    default:
      return 'string'
  }
}

/** Unmarshals map keys the way XAPI does for enum-keyed maps: an unknown enum fails. */
function checkMapKey(cls: string, field: string, key: string): void {
  if (cls === 'VM' && field === 'blocked_operations' && !VM_OPERATIONS.has(key)) {
    throw xapiFault('INTERNAL_ERROR', `Unknown tag '${key}'`)
  }
}

function toStored(field: FieldSpec, value: Arg): StoredValue {
  if (value instanceof Date) return formatXapiDate(value)
  return value as StoredValue
}

function addClassMethods(registry: MethodRegistry, spec: ClassSpec): void {
  if (!spec.generated) return
  const cls = spec.name
  if (spec.listable) {
    registry.add({
      name: `${cls}.get_all_records`,
      params: [],
      handler: ({ pool }) => {
        const out: Record<string, WireValue> = {}
        for (const [ref] of pool.db.all(cls)) out[ref] = pool.db.toWire(cls, ref)
        return out
      },
    })
    registry.add({
      name: `${cls}.get_all_records_where`,
      params: ['string'],
      handler: ({ pool }, [expr]) => {
        const { matches, keys } = compileQuery(spec, expr as string)
        const out: Record<string, WireValue> = {}
        const test = (ref: string, record: Readonly<Record<string, StoredValue>>): void => {
          const read = (name: string): StoredValue | undefined => {
            const type = spec.byName.get(name)?.type
            return type?.kind === 'rel' ? pool.db.related(type.from, type.via, ref) : record[name]
          }
          if (matches(ref, read)) out[ref] = pool.db.toWire(cls, ref)
        }
        // A client reading by ref or by owner (`field "VM" = …`) names a few objects of a
        // large class: only those are tested, in the order a scan would meet them.
        const refs = keys === undefined ? undefined : pool.db.lookup(cls, keys)
        if (refs === undefined) for (const [ref, record] of pool.db.all(cls)) test(ref, record)
        else for (const ref of refs) test(ref, pool.db.get(cls, ref))
        return out
      },
    })
    registry.add({
      name: `${cls}.get_all`,
      params: [],
      handler: ({ pool }) => [...pool.db.all(cls)].map(([ref]) => ref),
    })
  }
  registry.add({
    name: `${cls}.get_record`,
    params: ['string'],
    handler: ({ pool }, [ref]) => pool.db.toWire(cls, ref as string),
  })
  registry.add({
    name: `${cls}.get_by_uuid`,
    params: ['string'],
    handler: ({ pool }, [uuid]) => pool.db.byUuid(cls, uuid as string),
  })
  if (spec.byName.has('name_label')) {
    registry.add({
      name: `${cls}.get_by_name_label`,
      params: ['string'],
      handler: ({ pool }, [label]) =>
        [...pool.db.all(cls)].filter(([, record]) => record['name_label'] === label).map(([ref]) => ref),
    })
  }
  for (const field of spec.fields) {
    const name = field.name
    registry.add({
      name: `${cls}.get_${name}`,
      params: ['string'],
      handler: ({ pool }, [ref]) => pool.db.toWire(cls, ref as string)[name] as WireValue,
    })
    if (!field.rw) continue
    registry.add({
      name: `${cls}.set_${name}`,
      params: ['string', paramTypeOf(field)],
      handler: ({ pool }, [ref, value]) => {
        pool.db.get(cls, ref as string)
        if (field.type.kind === 'm')
          for (const key of Object.keys(value as Record<string, string>)) checkMapKey(cls, name, key)
        pool.db.update(cls, ref as string, { [name]: toStored(field, value as Arg) })
        return ''
      },
    })
    if (field.type.kind === 'm') {
      registry.add({
        name: `${cls}.add_to_${name}`,
        params: ['string', 'string', 'string'],
        handler: ({ pool }, [ref, key, value]) => {
          const map = pool.db.get(cls, ref as string)[name] as Readonly<Record<string, string>>
          checkMapKey(cls, name, key as string)
          if (Object.hasOwn(map, key as string))
            throw xapiFault('MAP_DUPLICATE_KEY', cls, name, ref as string, key as string)
          pool.db.update(cls, ref as string, { [name]: { ...map, [key as string]: value as string } })
          return ''
        },
      })
      registry.add({
        name: `${cls}.remove_from_${name}`,
        params: ['string', 'string'],
        handler: ({ pool }, [ref, key]) => {
          const map = pool.db.get(cls, ref as string)[name] as Readonly<Record<string, string>>
          checkMapKey(cls, name, key as string)
          // Removing a missing key is a silent success.
          if (!Object.hasOwn(map, key as string)) return ''
          const next = { ...map }
          delete next[key as string]
          pool.db.update(cls, ref as string, { [name]: next })
          return ''
        },
      })
    }
    if (field.type.kind === 'ss') {
      registry.add({
        name: `${cls}.add_${name}`,
        params: ['string', 'string'],
        handler: ({ pool }, [ref, value]) => {
          const set = pool.db.get(cls, ref as string)[name] as readonly string[]
          if (!set.includes(value as string)) pool.db.update(cls, ref as string, { [name]: [...set, value as string] })
          return ''
        },
      })
      registry.add({
        name: `${cls}.remove_${name}`,
        params: ['string', 'string'],
        handler: ({ pool }, [ref, value]) => {
          const set = pool.db.get(cls, ref as string)[name] as readonly string[]
          if (set.includes(value as string))
            pool.db.update(cls, ref as string, { [name]: set.filter(item => item !== value) })
          return ''
        },
      })
    }
  }
}

export function addGenericMethods(registry: MethodRegistry): void {
  for (const spec of SCHEMA.values()) addClassMethods(registry, spec)
}
