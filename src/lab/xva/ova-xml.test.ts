import { describe, expect, it } from 'vitest'
import { isLabError } from '../lab-error.js'
import { WireDateTime, WireFloat } from '../wire/values.js'
import { encodeOvaXml, parseOvaXml, type OvaVersion } from './ova-xml.js'

const VERSION: OvaVersion = {
  hostname: 'lab-host',
  date: '2026-01-01',
  productVersion: '8.3.0',
  productBrand: 'XCP-ng',
  buildNumber: 'lab',
  xapiMajor: 2,
  xapiMinor: 21,
  exportVsn: 2,
}

function code(run: () => unknown): string | undefined {
  try {
    run()
    return undefined
  } catch (error) {
    return isLabError(error) ? error.code : String(error)
  }
}

describe('ova.xml', () => {
  it('is one XML-RPC struct {version, objects: [{class, id, snapshot}]} without whitespace, as XAPI writes it', () => {
    const xml = encodeOvaXml(VERSION, [
      { cls: 'VM', id: 'Ref:0', snapshot: { name_label: 'a<b', memory_static_max: 1024, VBDs: ['Ref:1'] } },
    ])
    expect(xml).toBe(
      '<value><struct><member><name>version</name><value><struct>' +
        '<member><name>hostname</name><value>lab-host</value></member><member><name>date</name><value>2026-01-01</value></member>' +
        '<member><name>product_version</name><value>8.3.0</value></member><member><name>product_brand</name><value>XCP-ng</value></member>' +
        '<member><name>build_number</name><value>lab</value></member><member><name>xapi_major</name><value><i4>2</i4></value></member>' +
        '<member><name>xapi_minor</name><value><i4>21</i4></value></member><member><name>export_vsn</name><value><i4>2</i4></value></member>' +
        '</struct></value></member><member><name>objects</name><value><array><data><value><struct>' +
        '<member><name>class</name><value>VM</value></member><member><name>id</name><value>Ref:0</value></member>' +
        '<member><name>snapshot</name><value><struct><member><name>name_label</name><value>a&lt;b</value></member>' +
        '<member><name>memory_static_max</name><value>1024</value></member><member><name>VBDs</name><value><array><data><value>Ref:1</value></data></array></value></member>' +
        '</struct></value></member></struct></value></data></array></value></member></struct></value>',
    )
  })

  it('reads back what it writes, typed values included, with or without an XML declaration', () => {
    const xml = encodeOvaXml(VERSION, [
      {
        cls: 'VDI',
        id: 'Ref:3',
        snapshot: {
          virtual_size: 8388608,
          snapshot_time: new WireDateTime('19700101T00:00:00Z'),
          progress: new WireFloat(0.5),
          sharable: false,
        },
      },
    ])
    for (const text of [xml, `<?xml version="1.0"?>${xml}`]) {
      const parsed = parseOvaXml(text, 0)
      expect(parsed.version).toEqual(VERSION)
      expect(parsed.objects).toHaveLength(1)
      const [object] = parsed.objects
      expect(object?.cls).toBe('VDI')
      expect(object?.id).toBe('Ref:3')
      expect(object?.snapshot['virtual_size']).toBe('8388608')
      expect(object?.snapshot['progress']).toBe(0.5)
      expect(object?.snapshot['sharable']).toBe(false)
      expect(object?.snapshot['snapshot_time']).toEqual(new Date(0))
    }
  })

  it('takes a missing export_vsn as 0, as XAPI does', () => {
    const xml = encodeOvaXml(VERSION, []).replace(
      '<member><name>export_vsn</name><value><i4>2</i4></value></member>',
      '',
    )
    expect(parseOvaXml(xml, 0).version.exportVsn).toBe(0)
  })

  it('refuses what is not the header struct with XVA_BAD_METADATA', () => {
    expect(code(() => parseOvaXml('<value><struct>', 0))).toBe('XVA_BAD_METADATA')
    expect(code(() => parseOvaXml('<value>text</value>', 0))).toBe('XVA_BAD_METADATA')
    expect(code(() => parseOvaXml(encodeOvaXml(VERSION, []).replace('hostname', 'host'), 0))).toBe('XVA_BAD_METADATA')
    expect(
      code(() =>
        parseOvaXml(
          encodeOvaXml(VERSION, [{ cls: 'VM', id: 'Ref:0', snapshot: {} }]).replace(
            '<name>id</name>',
            '<name>idx</name>',
          ),
          0,
        ),
      ),
    ).toBe('XVA_BAD_METADATA')
  })
})
