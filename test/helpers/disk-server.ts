import { createServer } from 'node:http'
import type { IncomingMessage, Server } from 'node:http'
import { EofBodyFront } from '../../src/lab/http/eof-body-front.js'
import { exportRawVdi } from '../../src/lab/http/export-raw-vdi.js'
import { importRawVdi } from '../../src/lab/http/import-raw-vdi.js'
import type {
  DataPathFault,
  DataPathKind,
  DiskHandler,
  DiskHandlerContext,
  LabTaskHandle,
  LabVdiView,
} from '../../src/lab/http/types.js'
import { SparseDiskStore } from '../../src/lab/storage/sparse-disk-store.js'
import { makeTempDir } from './tmp.js'

export interface TestTask {
  ref: string
  label: string
  status: 'pending' | 'success' | 'failure'
  progress: number
  result: string | undefined
  error: readonly string[] | undefined
  cancelRequested: boolean
}

export const SESSION = 'OpaqueRef:test-session'

/**
 * A real HTTP server on 127.0.0.1:0, behind the lab hosts' {@link EofBodyFront}, that routes
 * the two disk paths by prefix to the real handlers, with a small but real
 * {@link DiskHandlerContext}: a SparseDiskStore, a VDI table, tasks, one valid session
 * (`SESSION`, or Basic `root:secret`), per-VDI redirects and faults.
 * What the full lab does with records and events is not needed to test the data paths.
 */
export async function startDiskServer(dir: string): Promise<{
  url: string
  store: SparseDiskStore
  tasks: Map<string, TestTask>
  vdis: Map<string, LabVdiView>
  redirects: Map<string, string>
  faults: { kind: DataPathKind; fault: DataPathFault }[]
  changed: string[]
  releases: { count: number }
  addVdi(uuid: string, virtualSize: number): Promise<LabVdiView>
  /** a view of a disk made directly in the store (a snapshot or clone) */
  register(uuid: string): LabVdiView
  waitForTask(ref: string): Promise<TestTask>
  createTask(): TestTask
  close(): Promise<void>
}> {
  const store = await SparseDiskStore.open(dir)
  const tasks = new Map<string, TestTask>()
  const vdis = new Map<string, LabVdiView>()
  const redirects = new Map<string, string>()
  const faults: { kind: DataPathKind; fault: DataPathFault }[] = []
  const changed: string[] = []
  const releases = { count: 0 }
  let taskCount = 0

  const createTask = (label = 'test'): TestTask => {
    const task: TestTask = {
      ref: `OpaqueRef:task-${++taskCount}`,
      label,
      status: 'pending',
      progress: 0,
      result: undefined,
      error: undefined,
      cancelRequested: false,
    }
    tasks.set(task.ref, task)
    return task
  }
  const handleOf = (task: TestTask): LabTaskHandle => ({
    ref: task.ref,
    setProgress: progress => {
      task.progress = progress
    },
    succeed: result => {
      if (task.status !== 'pending') throw new Error(`task ${task.ref} completed twice`)
      task.status = 'success'
      task.progress = 1
      task.result = result
    },
    fail: (code, params) => {
      if (task.status !== 'pending') throw new Error(`task ${task.ref} completed twice`)
      task.status = 'failure'
      task.error = [code, ...params]
    },
    get cancelRequested() {
      return task.cancelRequested
    },
  })

  const ctx: DiskHandlerContext = {
    storage: store,
    async authenticate(req: IncomingMessage, query: URLSearchParams) {
      if (query.get('session_id') === SESSION) return { sessionRef: SESSION, release: () => undefined }
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')
      if (basic !== null && Buffer.from(basic[1] as string, 'base64').toString() === 'root:secret') {
        return { sessionRef: 'OpaqueRef:temporary', release: () => void releases.count++ }
      }
      return undefined
    },
    lookupVdi: name => vdis.get(name) ?? [...vdis.values()].find(vdi => vdi.uuid === name),
    redirectFor: vdi => redirects.get(vdi.uuid),
    openTask(taskId, label) {
      if (taskId === undefined) return handleOf(createTask(label))
      const task = tasks.get(taskId)
      return task === undefined || task.status !== 'pending' ? undefined : handleOf(task)
    },
    takeFault(kind) {
      const index = faults.findIndex(f => f.kind === kind)
      if (index === -1) return undefined
      return faults.splice(index, 1)[0]?.fault
    },
    vdiChanged: vdi => void changed.push(vdi.uuid),
  }

  const routes: [string, DiskHandler][] = [
    ['/export_raw_vdi', exportRawVdi],
    ['/import_raw_vdi', importRawVdi],
  ]
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    const route = routes.find(([prefix]) => path.startsWith(prefix))
    if (route === undefined) {
      res.writeHead(404).end()
      return
    }
    route[1](req, res, ctx).catch((error: unknown) => {
      res.destroy(error instanceof Error ? error : new Error(String(error)))
    })
  })
  // listens as a lab host does, so a length-less import body is read to EOF as XAPI reads it
  const front = await EofBodyFront.listen(server, { address: '127.0.0.1', port: 0 })
  const { port } = front

  let vdiCount = 0
  const register = (uuid: string): LabVdiView => {
    const info = store.info(uuid)
    if (info === undefined) throw new Error(`no disk ${uuid}`)
    const view: LabVdiView = {
      ref: `OpaqueRef:vdi-${++vdiCount}`,
      uuid,
      diskId: uuid,
      srRef: 'OpaqueRef:sr',
      virtualSize: info.virtualSize,
    }
    vdis.set(view.ref, view)
    return view
  }
  return {
    url: `http://127.0.0.1:${port}`,
    store,
    tasks,
    vdis,
    redirects,
    faults,
    changed,
    releases,
    async addVdi(uuid, virtualSize) {
      await store.create(uuid, virtualSize)
      return register(uuid)
    },
    register,
    async waitForTask(ref) {
      const task = tasks.get(ref)
      if (task === undefined) throw new Error(`no task ${ref}`)
      // the handler completes the task just after the last byte; poll until it has
      while (task.status === 'pending') await new Promise(resolve => setTimeout(resolve, 2))
      return task
    },
    createTask: () => createTask(),
    async close() {
      await front.close()
      await store.close()
    },
  }
}

export type DiskServer = Awaited<ReturnType<typeof startDiskServer>>

/** {@link startDiskServer} on a fresh temporary directory of its own, which `close()` removes. */
export async function startTempDiskServer(): Promise<DiskServer> {
  const tmp = await makeTempDir()
  let server: DiskServer
  try {
    server = await startDiskServer(tmp.path)
  } catch (error) {
    await tmp.remove()
    throw error
  }
  return {
    ...server,
    async close() {
      try {
        await server.close()
      } finally {
        await tmp.remove()
      }
    },
  }
}
