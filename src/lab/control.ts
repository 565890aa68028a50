/**
 * The lab control API, outside the XAPI namespace: write guest data into a VM's disks (so a
 * test can make a VM change between passes), read it back, inject and clear faults, find VMs.
 * Available as a library ({@link LabControl}) and over HTTP under `/lab/` on every host.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { LabSetupError } from './lab-error.js'
import { validateFault, type LabFault } from './faults.js'
import type { Route } from './http/host-server.js'
import type { LabPool } from './pool.js'
import { guestBlock } from './storage/guest-data.js'
import { BLOCK_SIZE } from './storage/types.js'

/** Byte ranges to write, or whole 2 MiB blocks of deterministic data (`seed`) or zeros. */
export type GuestWrites =
  | readonly { readonly offset: number; readonly data: Buffer }[]
  | { readonly blocks: readonly number[]; readonly seed: number; readonly zero?: boolean }

/** A VM as the control API reports it. */
export interface LabVmInfo {
  readonly ref: string
  readonly uuid: string
  readonly nameLabel: string
  readonly powerState: string
  /** the VM's disks in userdevice order */
  readonly vdis: readonly { readonly ref: string; readonly uuid: string; readonly virtualSize: number }[]
}

/** The lab control API: guest data, faults and lookups for tests and demos. */
export interface LabControl {
  /** Writes into a VDI (by uuid or ref) or a VM's first disk (by VM uuid or ref). */
  writeGuestData(pool: string, vdiOrVm: string, writes: GuestWrites): Promise<void>
  /** Reads what the guest sees. */
  readGuestData(pool: string, vdiOrVm: string, offset: number, length: number): Promise<Buffer>
  injectFault(pool: string, fault: LabFault): void
  clearFaults(pool?: string): void
  listFaults(pool: string): LabFault[]
  /** The first non-control-domain, non-snapshot VM with that name_label. */
  findVm(pool: string, nameLabel: string): LabVmInfo | undefined
}

function unknown(what: string): never {
  throw new LabSetupError('LAB_OBJECT_UNKNOWN', what)
}

function vmInfo(pool: LabPool, ref: string): LabVmInfo {
  const vm = pool.db.get('VM', ref)
  const vdis = pool.db
    .related('VBD', 'VM', ref)
    .map(vbd => pool.db.get('VBD', vbd))
    .filter(vbd => vbd['type'] === 'Disk' && !pool.isNull(vbd['VDI']))
    .sort((a, b) => Number(a['userdevice']) - Number(b['userdevice']))
    .map(vbd => {
      const vdi = pool.db.get('VDI', vbd['VDI'] as string)
      return { ref: vbd['VDI'] as string, uuid: vdi['uuid'] as string, virtualSize: vdi['virtual_size'] as number }
    })
  return {
    ref,
    uuid: vm['uuid'] as string,
    nameLabel: vm['name_label'] as string,
    powerState: vm['power_state'] as string,
    vdis,
  }
}

/** The control API over the running pools, by pool name. */
export function createControl(pools: ReadonlyMap<string, LabPool>): LabControl {
  const poolNamed = (name: string): LabPool =>
    pools.get(name) ?? unknown(`lab pool ${name} does not exist; pools: ${[...pools.keys()].join(', ')}`)
  const diskOf = (pool: LabPool, id: string): { ref: string; diskId: string } => {
    const vdi = pool.vdiView(id)
    if (vdi !== undefined) return { ref: vdi.ref, diskId: vdi.diskId }
    const vmRef = pool.db.find('VM', id) !== undefined ? id : pool.db.findByUuid('VM', id)
    if (vmRef === undefined) unknown(`no VDI or VM ${id} in lab pool ${pool.name}`)
    const first = vmInfo(pool, vmRef).vdis[0] ?? unknown(`VM ${id} in lab pool ${pool.name} has no disk`)
    return { ref: first.ref, diskId: pool.vdiView(first.ref)!.diskId }
  }
  return {
    async writeGuestData(poolName, vdiOrVm, writes) {
      const pool = poolNamed(poolName)
      const { ref, diskId } = diskOf(pool, vdiOrVm)
      if (Array.isArray(writes)) {
        for (const write of writes as readonly { offset: number; data: Buffer }[])
          await pool.storage.write(diskId, write.offset, write.data)
      } else {
        const { blocks, seed, zero } = writes as { blocks: readonly number[]; seed: number; zero?: boolean }
        const size = pool.storage.info(diskId)?.virtualSize ?? 0
        for (const index of blocks) {
          const offset = index * BLOCK_SIZE
          if (offset >= size) unknown(`block ${index} is beyond the end of disk ${diskId}`)
          const data = zero === true ? Buffer.alloc(BLOCK_SIZE) : guestBlock(seed, index)
          await pool.storage.write(diskId, offset, data.subarray(0, Math.min(BLOCK_SIZE, size - offset)))
        }
      }
      pool.refreshVdi(ref)
    },
    async readGuestData(poolName, vdiOrVm, offset, length) {
      const pool = poolNamed(poolName)
      return pool.storage.read(diskOf(pool, vdiOrVm).diskId, offset, length)
    },
    injectFault(poolName, fault) {
      poolNamed(poolName).faults.add(validateFault(fault))
    },
    clearFaults(poolName) {
      if (poolName === undefined) for (const pool of pools.values()) pool.faults.clear()
      else poolNamed(poolName).faults.clear()
    },
    listFaults: poolName => poolNamed(poolName).faults.list(),
    findVm(poolName, nameLabel) {
      const pool = poolNamed(poolName)
      for (const [ref, vm] of pool.db.all('VM')) {
        if (vm['name_label'] === nameLabel && vm['is_control_domain'] !== true && vm['is_a_snapshot'] !== true)
          return vmInfo(pool, ref)
      }
      return undefined
    },
  }
}

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

/**
 * `/lab/` over HTTP (JSON in and out):
 * `POST /lab/guest-data {pool, target, writes: [{offset, data: base64}]}` or `{pool, target, blocks, seed, zero?}`;
 * `GET /lab/guest-data?pool&target&offset&length` → bytes; `GET|POST|DELETE /lab/faults[?pool]`;
 * `GET /lab/vms?pool&name`.
 */
export function controlRoute(control: LabControl): Route {
  return {
    method: '*',
    prefix: '/lab/',
    async handle(req, res) {
      const url = new URL(req.url ?? '/', 'http://lab')
      const q = (name: string): string => url.searchParams.get(name) ?? ''
      try {
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
