/**
 * The guests of a pool's VMs, as far as XAPI can see them: some time after a VM starts, its
 * guest tools report and XAPI creates a `VM_guest_metrics` object (`PV_drivers_detected`, OS and
 * driver versions, the guest's addresses) and points `VM.guest_metrics` at it; when the VM halts
 * the object goes and the field returns to NULL (XAPI's `force_state_reset`). A guest with a
 * health-check script answers XO's health check: if `vm-data/xo-backup-health-check` reads
 * `planned` when the tools come up, the script writes `running`, then `success` or `failure`
 * (and a message in `vm-data/xo-backup-health-check-error`), which XAPI shows in
 * `VM.xenstore_data`.
 *
 * What a guest does is decided by its disks' lineage, the way a real guest's OS and scripts come
 * with its disks: the setting is stored in the VM's `other_config` under {@link GUEST_KEY}, which
 * VM.snapshot, clone and copy, XVA export/import and replication (which copies `other_config`)
 * all carry to the new VM; a VM without the key follows the lab-wide default.
 */
import type { Database } from '../db/database.js'
import { NULL_REF } from '../db/database.js'
import type { LabGuestSpec } from '../spec.js'
import { formatXapiDate } from '../wire/values.js'

/** The lab-private `other_config` key holding a VM's guest setting as JSON. */
export const GUEST_KEY = 'xen-cr-lab:guest'
/** The xenstore keys of XO's health check. */
export const HEALTH_CHECK_KEY = 'vm-data/xo-backup-health-check'
export const HEALTH_CHECK_ERROR_KEY = 'vm-data/xo-backup-health-check-error'

/** When the tools report if nothing says otherwise: a short boot. */
export const DEFAULT_TOOLS_DELAY_MS = 500

/** The guest setting stored on a VM, or undefined when it has none (or one that is not valid JSON). */
export function storedGuest(db: Database, vmRef: string): LabGuestSpec | undefined {
  const text = (db.find('VM', vmRef)?.['other_config'] as Readonly<Record<string, string>> | undefined)?.[GUEST_KEY]
  if (text === undefined) return undefined
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null ? value : undefined
  } catch {
    return undefined
  }
}

export class GuestAgent {
  readonly #db: Database
  readonly #defaults: LabGuestSpec
  /** pending tool reports and verdicts per VM, cleared when it halts */
  readonly #timers = new Map<string, Set<NodeJS.Timeout>>()
  #closed = false

  constructor(db: Database, defaults: LabGuestSpec = {}) {
    this.#db = db
    this.#defaults = defaults
  }

  /** The lab-wide default (persisted with the lab, since a restart does not read the spec again). */
  get defaults(): LabGuestSpec {
    return this.#defaults
  }

  /** What the VM's guest does: its own setting, field by field over the lab-wide default. */
  behaviourOf(vmRef: string): LabGuestSpec {
    const own = storedGuest(this.#db, vmRef) ?? {}
    return { ...this.#defaults, ...own }
  }

  /** The VM has just started: its tools report after their delay (never, for a guest without tools). */
  started(vmRef: string): void {
    const tools = this.behaviourOf(vmRef).tools ?? DEFAULT_TOOLS_DELAY_MS
    if (tools === 'never') return
    this.#later(vmRef, tools, () => this.report(vmRef))
  }

  /**
   * The tools report now: a fresh `VM_guest_metrics` on the VM (an `add` event on the metrics, a
   * `mod` on the VM), then the health-check script's turn. No-op unless the VM is running.
   */
  report(vmRef: string): void {
    const vm = this.#db.find('VM', vmRef)
    if (vm === undefined || vm['power_state'] !== 'Running') return
    this.#dropMetrics(vmRef)
    const metrics = this.#db.create('VM_guest_metrics', {
      os_version: {
        name: 'Debian GNU/Linux 12 (bookworm)',
        distro: 'debian',
        major: '12',
        minor: '0',
        uname: '6.1.0-lab',
      },
      netbios_name: {},
      PV_drivers_version: { major: '8', minor: '3', micro: '0', build: 'lab' },
      PV_drivers_up_to_date: true,
      memory: {},
      disks: {},
      networks: this.#addresses(vmRef, vm['domid'] as number),
      other: { 'feature-shutdown': '1', 'feature-poweroff': '1', 'feature-reboot': '1', 'has-vendor-device': '0' },
      last_updated: formatXapiDate(new Date()),
      live: true,
      can_use_hotplug_vbd: 'yes',
      can_use_hotplug_vif: 'yes',
      PV_drivers_detected: true,
    })
    this.#db.update('VM', vmRef, { guest_metrics: metrics })
    this.#runHealthCheckScript(vmRef)
  }

  /** The VM halted or is going away: pending reports are cancelled and its metrics destroyed. */
  halted(vmRef: string): void {
    for (const timer of this.#timers.get(vmRef) ?? []) clearTimeout(timer)
    this.#timers.delete(vmRef)
    this.#dropMetrics(vmRef)
  }

  /** Writes keys into the VM's `xenstore_data` as its guest would (a `mod` event on the VM). */
  writeXenstore(vmRef: string, entries: Readonly<Record<string, string>>): void {
    const current = this.#db.get('VM', vmRef)['xenstore_data'] as Readonly<Record<string, string>>
    this.#db.update('VM', vmRef, { xenstore_data: { ...current, ...entries } })
  }

  /** The lab stops: nothing more happens. */
  close(): void {
    this.#closed = true
    for (const timers of this.#timers.values()) for (const timer of timers) clearTimeout(timer)
    this.#timers.clear()
  }

  /** XO's example script: only a boot that finds `planned` is a health check. */
  #runHealthCheckScript(vmRef: string): void {
    const script = this.behaviourOf(vmRef).healthCheck
    if (script === undefined) return
    const xenstore = this.#db.get('VM', vmRef)['xenstore_data'] as Readonly<Record<string, string>>
    if (xenstore[HEALTH_CHECK_KEY] !== 'planned') return
    const verdict = (): void => {
      if (this.#db.find('VM', vmRef)?.['power_state'] !== 'Running') return
      this.writeXenstore(vmRef, {
        [HEALTH_CHECK_KEY]: script.result,
        ...(script.result === 'failure' && script.error !== undefined
          ? { [HEALTH_CHECK_ERROR_KEY]: script.error }
          : {}),
      })
    }
    const delay = script.delayMs ?? 0
    if (delay === 0) return verdict()
    this.writeXenstore(vmRef, { [HEALTH_CHECK_KEY]: 'running' })
    this.#later(vmRef, delay, verdict)
  }

  /** `<device>/ip`, `<device>/ipv4/0` and `<device>/ipv6/0` per VIF, as the Linux tools report them. */
  #addresses(vmRef: string, domid: number): Record<string, string> {
    const networks: Record<string, string> = {}
    for (const vif of this.#db.related('VIF', 'VM', vmRef)) {
      const device = this.#db.get('VIF', vif)['device'] as string
      const host = 10 + Number(device)
      const ipv4 = `10.${(domid >> 8) & 255}.${domid & 255}.${host}`
      networks[`${device}/ip`] = ipv4
      networks[`${device}/ipv4/0`] = ipv4
      networks[`${device}/ipv6/0`] = `fe80::${domid.toString(16)}:${host.toString(16)}`
    }
    return networks
  }

  #dropMetrics(vmRef: string): void {
    const vm = this.#db.find('VM', vmRef)
    const metrics = vm?.['guest_metrics'] as string | undefined
    if (metrics === undefined || metrics === NULL_REF) return
    this.#db.update('VM', vmRef, { guest_metrics: NULL_REF })
    if (this.#db.find('VM_guest_metrics', metrics) !== undefined) this.#db.destroy('VM_guest_metrics', metrics)
  }

  #later(vmRef: string, ms: number, run: () => void): void {
    if (this.#closed) return
    const timers = this.#timers.get(vmRef) ?? new Set<NodeJS.Timeout>()
    this.#timers.set(vmRef, timers)
    const timer = setTimeout(() => {
      timers.delete(timer)
      if (timers.size === 0 && this.#timers.get(vmRef) === timers) this.#timers.delete(vmRef)
      run()
    }, ms)
    // a pending guest never keeps a process alive on its own
    timer.unref()
    timers.add(timer)
  }
}
