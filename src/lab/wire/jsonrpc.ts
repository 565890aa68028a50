/**
 * JSON-RPC v1 and v2 as XAPI speaks them on `/jsonrpc` (reference §1.3): the version is echoed,
 * v2 success has no `error` key, v2 failure is `{code: 1, message: CODE, data: params}`, v1
 * failure is `error: [CODE, …params]`, datetimes are strings.
 */
import { WireParseError } from './xml.js'
import type { DecodedValue, WireValue } from './values.js'

export type JsonRpcVersion = 1 | 2

export interface JsonRpcCall {
  readonly version: JsonRpcVersion
  readonly id: string | number
  readonly method: string
  readonly params: DecodedValue[]
}

export function decodeJsonCall(body: string): JsonRpcCall {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch (error) {
    throw new WireParseError(`invalid JSON: ${(error as Error).message}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new WireParseError('JSON-RPC request is not an object')
  const request = parsed as Record<string, unknown>
  let version: JsonRpcVersion
  if (!('jsonrpc' in request)) version = 1
  else if (request['jsonrpc'] === '2.0') version = 2
  else throw new WireParseError('unsupported jsonrpc version')
  const { id, method, params } = request
  if (typeof id !== 'string' && typeof id !== 'number') throw new WireParseError('JSON-RPC request without a valid id')
  if (typeof method !== 'string') throw new WireParseError('JSON-RPC method is not a string')
  let list: DecodedValue[]
  if (Array.isArray(params)) list = params as DecodedValue[]
  else if (version === 2 && (params === undefined || params === null)) list = []
  else if (version === 2 && typeof params === 'object') list = [params as DecodedValue]
  else throw new WireParseError('JSON-RPC params must be an array')
  return { version, id, method, params: list }
}

export function encodeJsonSuccess(version: JsonRpcVersion, id: string | number, value: WireValue): string {
  // the value goes as it is: the wrappers' toJSON unwrap them (floats, int32s, datetimes as strings)
  return JSON.stringify(version === 2 ? { jsonrpc: '2.0', result: value, id } : { result: value, error: null, id })
}

export function encodeJsonFailure(
  version: JsonRpcVersion,
  id: string | number,
  code: string,
  params: readonly string[],
): string {
  return JSON.stringify(
    version === 2
      ? { jsonrpc: '2.0', error: { code: 1, message: code, data: params }, id }
      : { result: null, error: [code, ...params], id },
  )
}
