/**
 * Golden JSON-RPC bytes (reference §1.3, §8.3): the JS client's parser rejects a v2 success that
 * carries `"error": null`, wants `error.code` an integer and the XAPI code in `error.message`.
 */
import { describe, expect, it } from 'vitest'
import { decodeJsonCall, encodeJsonFailure, encodeJsonSuccess } from './jsonrpc.js'
import { WireDateTime, WireFloat, WireInt32 } from './values.js'
import { WireParseError } from './xml.js'

describe('JSON-RPC responses', () => {
  it('v2 success has no error key', () => {
    expect(encodeJsonSuccess(2, 0, 'OpaqueRef:a')).toBe('{"jsonrpc":"2.0","result":"OpaqueRef:a","id":0}')
  })
  it('v2 failure is code 1, the XAPI code as message, the params as data', () => {
    expect(encodeJsonFailure(2, 'x', 'HANDLE_INVALID', ['VM', 'OpaqueRef:b'])).toBe(
      '{"jsonrpc":"2.0","error":{"code":1,"message":"HANDLE_INVALID","data":["VM","OpaqueRef:b"]},"id":"x"}',
    )
  })
  it('v1 success and failure', () => {
    expect(encodeJsonSuccess(1, 3, '')).toBe('{"result":"","error":null,"id":3}')
    expect(encodeJsonFailure(1, 3, 'SESSION_INVALID', ['OpaqueRef:c'])).toBe(
      '{"result":null,"error":["SESSION_INVALID","OpaqueRef:c"],"id":3}',
    )
  })
  it('sends ints and floats as numbers, datetimes as XAPI strings', () => {
    expect(
      encodeJsonSuccess(2, 1, {
        size: 2 * 1024 ** 4,
        progress: new WireFloat(0.5),
        n: new WireInt32(3),
        at: new WireDateTime('20241103T10:20:30Z'),
        ok: true,
        tags: [],
      }),
    ).toBe(
      '{"jsonrpc":"2.0","result":{"size":2199023255552,"progress":0.5,"n":3,"at":"20241103T10:20:30Z","ok":true,"tags":[]},"id":1}',
    )
  })
})

describe('JSON-RPC requests', () => {
  it('detects the version and accepts v2 params as array, object or nothing', () => {
    expect(decodeJsonCall('{"id":0,"jsonrpc":"2.0","method":"VM.get_all","params":["s"]}')).toEqual({
      version: 2,
      id: 0,
      method: 'VM.get_all',
      params: ['s'],
    })
    expect(decodeJsonCall('{"id":"a","method":"m","params":[]}')).toEqual({
      version: 1,
      id: 'a',
      method: 'm',
      params: [],
    })
    expect(decodeJsonCall('{"id":1,"jsonrpc":"2.0","method":"m"}').params).toEqual([])
    expect(decodeJsonCall('{"id":1,"jsonrpc":"2.0","method":"m","params":null}').params).toEqual([])
    expect(decodeJsonCall('{"id":1,"jsonrpc":"2.0","method":"m","params":{"a":1}}').params).toEqual([{ a: 1 }])
  })
  it('rejects what XAPI answers with HTTP 500', () => {
    for (const body of [
      '{"jsonrpc":"2.0","method":"m","params":[]}',
      '{"id":null,"jsonrpc":"2.0","method":"m","params":[]}',
      '{"id":1,"jsonrpc":"1.0","method":"m","params":[]}',
      '{"id":1,"method":"m"}',
      '{"id":1,"method":5,"params":[]}',
      '[1]',
      '{nope',
    ]) {
      expect(() => decodeJsonCall(body), body).toThrow(WireParseError)
    }
  })
})
