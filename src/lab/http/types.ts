/**
 * Contract between a lab host's HTTP server (which owns sessions, tasks and records) and the
 * handlers of the HTTP data paths (`/export_raw_vdi`, `/import_raw_vdi`, later `/export` and
 * `/import` for XVA). The server routes by longest path prefix, as XAPI does, and calls
 * `handle(req, res, ctx)`; the handler owns the response from then on.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { DiskStore } from '../storage/types.js'
import type { DecodedValue } from '../wire/values.js'
import type { XvaExportView } from '../xva/export-view.js'
import type { XvaImportOptions, XvaImportPlan } from '../xva/import-records.js'
import type { OvaObject, OvaVersion } from '../xva/ova-xml.js'
import type { DataPathFault, DataPathKind, LabTaskHandle, LabVdiView } from '../views.js'

// the shapes the pool shares with the handlers live in a leaf module, so the pool need not import this one
export type { DataPathFault, DataPathKind, LabTaskHandle, LabVdiView }

export interface DiskHandlerContext {
  readonly storage: DiskStore
  /**
   * The session named by `session_id` (query or cookie), or a temporary one from HTTP Basic
   * auth; undefined when there is none or it is invalid (the handler answers 401).
   * A temporary session is logged out by `release()`.
   */
  authenticate(
    req: IncomingMessage,
    query: URLSearchParams,
  ): Promise<{ sessionRef: string; release(): void } | undefined>
  /** A VDI by ref or uuid. */
  lookupVdi(refOrUuid: string): LabVdiView | undefined
  /**
   * When the VDI's SR is not reachable from the host that got the request, the base URL
   * (`http://address:port`) of a host that can reach it: the handler answers 302 there.
   */
  redirectFor(vdi: LabVdiView): string | undefined
  /**
   * The caller's task (`task_id` query or cookie) if it names a pending task, else a new task
   * with `label` owned by the session. Undefined when `task_id` names no task.
   */
  openTask(taskId: string | undefined, label: string, sessionRef: string): LabTaskHandle | undefined
  /** The fault to apply to this transfer, if any (consumed). */
  takeFault(kind: DataPathKind, vdi: LabVdiView): DataPathFault | undefined
  /** The disk content changed: refresh `physical_utilisation` and emit a `mod` event on the VDI. */
  vdiChanged(vdi: LabVdiView): void
  /**
   * An export sent `bytes` of body (whole or cut short), for the pool's transfer counters:
   * `raw` names the VDI, `xva` the VM. Optional: a bare disk server counts nothing.
   */
  exported?(kind: 'raw' | 'xva', uuid: string, bytes: number): void
}

export type DiskHandler = (req: IncomingMessage, res: ServerResponse, ctx: DiskHandlerContext) => Promise<void>

/** An SR as the XVA import sees it. */
export interface LabSrView {
  readonly ref: string
  readonly uuid: string
  readonly contentType: string
}

/**
 * What the XVA handlers (`GET /export`, `PUT /import`) need from the host on top of the disk
 * context: the VM as ova.xml describes it, XAPI's VM lock, the host's version, SR lookup and
 * redirect, and the creation of the imported records.
 */
export interface XvaHandlerContext extends DiskHandlerContext {
  /** The VM (ref or uuid) with the objects and disks an export writes; undefined if there is none. */
  vmForExport(refOrUuid: string): XvaExportView | undefined
  /**
   * XAPI's `lock_vm`: the operation pre-checks (throwing the XAPI error, e.g.
   * `VM_BAD_POWER_STATE`), then `op` in the VM's `current_operations` under `taskRef`.
   * The returned function unlocks.
   */
  lockVm(vmRef: string, op: 'export', taskRef: string): () => void
  /** The `version` struct this host writes into ova.xml (and compares imports with). */
  xvaVersion(): OvaVersion
  /** An SR by ref or uuid, or the pool's default SR when `refOrUuid` is undefined. */
  lookupSr(refOrUuid: string | undefined): LabSrView | undefined
  /** Like `redirectFor`, for an SR this host cannot reach. */
  redirectForSr(sr: LabSrView): string | undefined
  /** Creates the VM, VDIs, VBDs and VIFs of ova.xml's objects on the SR (throws XAPI errors). */
  importVm(
    objects: readonly OvaObject<DecodedValue>[],
    srRef: string,
    options: XvaImportOptions,
  ): Promise<XvaImportPlan>
}

export type XvaHandler = (req: IncomingMessage, res: ServerResponse, ctx: XvaHandlerContext) => Promise<void>
