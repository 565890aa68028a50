/**
 * The control API over HTTP, under `/lab/` on every host of every pool (JSON in and out), so a
 * pool that is down is brought back through a host of another pool:
 * `POST /lab/guest-data {pool, target, writes: [{offset, data: base64}]}` or `{pool, target, blocks, seed, zero?}`;
 * `GET /lab/guest-data?pool&target&offset&length` → bytes; `GET|POST|DELETE /lab/faults[?pool]`;
 * `GET /lab/vms?pool&name`; `GET /lab/pools`; `POST /lab/pools/<name>/down {haltVms?}` and
 * `/up`; `POST /lab/vms/<uuid>/guest {pool?, guest}`; `POST /lab/vms/<uuid>/xenstore {pool?, data}`;
 * `GET /lab/stats?pool`, `DELETE /lab/stats[?pool]`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { GuestWrites, LabControl } from './control.js'
import type { LabFault } from './faults.js'
import type { Route } from './http/host-server.js'
import { LabSetupError } from './lab-error.js'

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk)
  const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}')
  if (typeof value !== 'object' || value === null) throw new TypeError('body must be a JSON object')
  return value as Record<string, unknown>
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) })
  res.end(text)
}

/** `{"key": "value"}` with string values only, as xenstore holds them. */
function stringMap(value: unknown, what: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new LabSetupError('LAB_SPEC_INVALID', `${what} must be an object of strings`)
  for (const [key, item] of Object.entries(value))
    if (typeof item !== 'string') throw new LabSetupError('LAB_SPEC_INVALID', `${what}: ${key} is not a string`)
  return value as Record<string, string>
}

const POOL_PATH = /^\/lab\/pools\/([^/]+)\/(down|up)$/
const VM_PATH = /^\/lab\/vms\/([^/]+)\/(guest|xenstore)$/

export function controlRoute(control: LabControl): Route {
  /** A VM endpoint's pool: the one named, else the one holding the VM. */
  const poolFor = (body: Record<string, unknown>, vm: string): string =>
    typeof body['pool'] === 'string' ? body['pool'] : (control.poolOfVm(vm) ?? `(no pool has VM ${vm})`)

  async function pathRoute(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const poolMatch = req.method === 'POST' ? POOL_PATH.exec(path) : null
    if (poolMatch !== null) {
      const name = decodeURIComponent(poolMatch[1]!)
      const body = await readJson(req)
      if (poolMatch[2] === 'up') await control.poolUp(name)
      else {
        // over HTTP the lab must keep a host that can bring the pool back
        const others = control.listPools().filter(pool => pool.name !== name && pool.up)
        if (control.isPoolUp(name) && others.length === 0) {
          reply(res, 409, { error: `lab pool ${name} is the last one up: no host would be left to bring it back` })
          return true
        }
        await control.poolDown(name, { haltVms: body['haltVms'] === true })
      }
      reply(res, 200, { ok: true, pool: name, up: control.isPoolUp(name) })
      return true
    }
    const vmMatch = req.method === 'POST' ? VM_PATH.exec(path) : null
    if (vmMatch !== null) {
      const vm = decodeURIComponent(vmMatch[1]!)
      const body = await readJson(req)
      if (vmMatch[2] === 'guest') control.setGuest(poolFor(body, vm), vm, body['guest'] ?? null)
      else control.writeXenstore(poolFor(body, vm), vm, stringMap(body['data'], 'xenstore data'))
      reply(res, 200, { ok: true })
      return true
    }
    return false
  }

  return {
    method: '*',
    prefix: '/lab/',
    async handle(req, res) {
      const url = new URL(req.url ?? '/', 'http://lab')
      const q = (name: string): string => url.searchParams.get(name) ?? ''
      try {
        if (await pathRoute(req, res, url.pathname)) return
        switch (`${req.method} ${url.pathname}`) {
          case 'POST /lab/guest-data': {
            const body = await readJson(req)
            const writes: GuestWrites = Array.isArray(body['writes'])
              ? (body['writes'] as { offset: number; data: string }[]).map(w => ({
                  offset: Number(w.offset),
                  data: Buffer.from(String(w.data), 'base64'),
                }))
              : {
                  blocks: (body['blocks'] as number[] | undefined) ?? [],
                  seed: Number(body['seed'] ?? 0),
                  zero: body['zero'] === true,
                }
            await control.writeGuestData(String(body['pool']), String(body['target']), writes)
            return reply(res, 200, { ok: true })
          }
          case 'GET /lab/guest-data': {
            const data = await control.readGuestData(q('pool'), q('target'), Number(q('offset')), Number(q('length')))
            res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(data.length) })
            return void res.end(data)
          }
          case 'GET /lab/faults':
            return reply(res, 200, control.listFaults(q('pool')))
          case 'POST /lab/faults': {
            const body = await readJson(req)
            control.injectFault(String(body['pool']), body['fault'] as LabFault)
            return reply(res, 200, { ok: true })
          }
          case 'DELETE /lab/faults':
            control.clearFaults(url.searchParams.get('pool') ?? undefined)
            return reply(res, 200, { ok: true })
          case 'GET /lab/vms': {
            const vm = control.findVm(q('pool'), q('name'))
            return vm === undefined
              ? reply(res, 404, { error: `no VM named ${q('name')} in lab pool ${q('pool')}` })
              : reply(res, 200, vm)
          }
          case 'GET /lab/pools':
            return reply(res, 200, control.listPools())
          case 'GET /lab/stats':
            return reply(res, 200, control.transferStats(q('pool')))
          case 'DELETE /lab/stats':
            control.resetTransferStats(url.searchParams.get('pool') ?? undefined)
            return reply(res, 200, { ok: true })
          default:
            req.resume()
            return reply(res, 404, { error: `unknown lab control endpoint ${req.method} ${url.pathname}` })
        }
      } catch (error) {
        return reply(res, 400, { error: error instanceof Error ? error.message : String(error) })
      }
    },
  }
}
