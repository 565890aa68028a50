/**
 * The {@link DiskHandlerContext} a lab host hands to the disk data-path handlers: sessions
 * (query, cookie or HTTP Basic), VDI lookup by ref or uuid, redirects to a host that sees the
 * SR, tasks, data-path faults and VDI refresh after writes.
 */
import type { IncomingMessage } from 'node:http'
import type { LabPool } from '../pool.js'
import { spaceCheckedStore } from '../storage/space-checked-store.js'
import type { DiskHandlerContext, LabTaskHandle } from './types.js'

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=')
    if (key === name) return decodeURIComponent(value.join('='))
  }
  return undefined
}

/** The context the disk handlers of host `hostRef` get; `baseUrlOf` gives a host's `http://address:port`. */
export function diskHandlerContext(
  pool: LabPool,
  hostRef: string,
  baseUrlOf: (hostRef: string) => string,
): DiskHandlerContext {
  return {
    storage: spaceCheckedStore(pool.storage, (id, offset, length) => pool.checkDiskWrite(id, offset, length)),
    async authenticate(req, query) {
      const sessionId = query.get('session_id') ?? cookie(req, 'session_id')
      if (sessionId !== undefined) {
        // Members accept sessions made on the master: that is how 302 redirects work.
        return pool.isSession(sessionId) ? { sessionRef: sessionId, release: () => undefined } : undefined
      }
      const header = req.headers.authorization
      if (header?.startsWith('Basic ') !== true) return undefined
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon === -1) return undefined
      const sessionRef = pool.basicSession(decoded.slice(0, colon), decoded.slice(colon + 1), hostRef)
      if (sessionRef === undefined) return undefined
      return { sessionRef, release: () => pool.logout(sessionRef) }
    },
    lookupVdi: refOrUuid => pool.vdiView(refOrUuid),
    redirectFor(vdi) {
      const host = pool.hostForSr(vdi.srRef)
      if (host === undefined || host === hostRef) return undefined
      // Only redirect when this host cannot see the SR itself.
      const here = pool.db.related('PBD', 'host', hostRef).some(pbd => {
        const record = pool.db.get('PBD', pbd)
        return record['SR'] === vdi.srRef && record['currently_attached'] === true
      })
      return here ? undefined : baseUrlOf(host)
    },
    openTask(taskId, label): LabTaskHandle | undefined {
      if (taskId !== undefined) return pool.tasks.pending(taskId)
      return pool.tasks.create(label, '')
    },
    takeFault: (kind, vdi) => pool.faults.takeDataPathFault(kind, vdi.uuid),
    vdiChanged: vdi => pool.refreshVdi(vdi.ref),
    exported: (kind, uuid, bytes) => pool.stats.httpExport(kind, uuid, bytes),
  }
}
