/**
 * `ova.xml`, the first member of an XVA: one XML-RPC struct `{version: {...}, objects: [{class,
 * id, snapshot}]}` (XAPI `importexport.ml` `header`), where `id` is an export-local `Ref:<n>`
 * and every ref inside a snapshot is such an id or `OpaqueRef:NULL`. Written and read with the
 * lab's XML-RPC value codec, so records go out exactly as the API sends them (ints as bare
 * strings, floats as `<double>`, datetimes as `<dateTime.iso8601>`).
 */
import { XvaFormatError } from '../lab-error.js'
import { WireInt32, type DecodedValue, type WireValue } from '../wire/values.js'
import { decodeXmlValueDocument, encodeXmlValue } from '../wire/xmlrpc.js'
import { WireParseError } from '../wire/xml.js'

/** The name of the metadata member, which must come first. */
export const OVA_XML = 'ova.xml'

/** XAPI's export format version: 2 = inline checksums, no checksum table at the end (Miami GA on). */
export const EXPORT_VSN = 2

/** Who wrote the export (`importexport.ml` `version`). */
export interface OvaVersion {
  readonly hostname: string
  readonly date: string
  readonly productVersion: string
  readonly productBrand: string
  readonly buildNumber: string
  readonly xapiMajor: number
  readonly xapiMinor: number
  readonly exportVsn: number
}

/** One exported object: its datamodel class, its export id and its record. */
export interface OvaObject<T = WireValue> {
  readonly cls: string
  readonly id: string
  readonly snapshot: { readonly [key: string]: T }
}

/** The text of `ova.xml` for these objects. */
export function encodeOvaXml(version: OvaVersion, objects: readonly OvaObject[]): string {
  const value: WireValue = {
    version: {
      hostname: version.hostname,
      date: version.date,
      product_version: version.productVersion,
      product_brand: version.productBrand,
      build_number: version.buildNumber,
      // XAPI writes these three as Rpc.Int, i.e. typed ints, unlike record fields
      xapi_major: new WireInt32(version.xapiMajor),
      xapi_minor: new WireInt32(version.xapiMinor),
      export_vsn: new WireInt32(version.exportVsn),
    },
    objects: objects.map(o => ({ class: o.cls, id: o.id, snapshot: o.snapshot })),
  }
  return encodeXmlValue(value)
}

/** ova.xml as read back: records are decoded XML-RPC values (ints as strings or numbers). */
export interface ParsedOva {
  readonly version: OvaVersion
  readonly objects: readonly OvaObject<DecodedValue>[]
}

function isStruct(value: DecodedValue | undefined): value is { [key: string]: DecodedValue } {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof Date) &&
    !Buffer.isBuffer(value)
  )
}

function text(value: DecodedValue | undefined, what: string): string {
  if (typeof value === 'string') return value
  if (typeof value === 'number') return String(value)
  throw new Error(`Failed to find key '${what}' in version data`)
}

function int(value: DecodedValue | undefined, what: string): number {
  const n =
    typeof value === 'number' ? value : typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isInteger(n)) throw new Error(`Failed to find key '${what}' in version data`)
  return n
}

/**
 * Parses `ova.xml` (`offset`: where its member starts, for the error). Anything that is not
 * the header struct is `XVA_BAD_METADATA`, with XAPI's wording where it has one.
 */
export function parseOvaXml(source: string, offset: number): ParsedOva {
  let root: DecodedValue
  try {
    root = decodeXmlValueDocument(source)
  } catch (error) {
    const reason = error instanceof WireParseError ? error.message : String(error)
    throw new XvaFormatError('XVA_BAD_METADATA', `ova.xml is not an XML-RPC value: ${reason}`, offset, { cause: error })
  }
  try {
    if (!isStruct(root)) throw new Error('ova.xml is not a struct')
    const version = root['version']
    const objects = root['objects']
    if (!isStruct(version)) throw new Error("Failed to find key 'version' in ova.xml")
    if (!Array.isArray(objects)) throw new Error("Failed to find key 'objects' in ova.xml")
    const exportVsn = version['export_vsn'] === undefined ? 0 : int(version['export_vsn'], 'export_vsn')
    return {
      version: {
        hostname: text(version['hostname'], 'hostname'),
        date: text(version['date'], 'date'),
        productVersion: text(version['product_version'], 'product_version'),
        productBrand: text(version['product_brand'], 'product_brand'),
        buildNumber: text(version['build_number'], 'build_number'),
        xapiMajor: int(version['xapi_major'], 'xapi_major'),
        xapiMinor: int(version['xapi_minor'], 'xapi_minor'),
        exportVsn,
      },
      objects: objects.map((object, i) => {
        if (!isStruct(object)) throw new Error(`object ${i} of ova.xml is not a struct`)
        const cls = object['class']
        const id = object['id']
        const snapshot = object['snapshot']
        if (typeof cls !== 'string' || typeof id !== 'string' || !isStruct(snapshot))
          throw new Error(`object ${i} of ova.xml lacks class, id or snapshot`)
        return { cls, id, snapshot }
      }),
    }
  } catch (error) {
    if (error instanceof XvaFormatError) throw error
    throw new XvaFormatError('XVA_BAD_METADATA', error instanceof Error ? error.message : String(error), offset, {
      cause: error,
    })
  }
}
