import { ValidationError, vmNotFound } from '../errors.js'
import type { XapiClient } from '../xapi/client.js'
import type { Job } from './types.js'

/** What `job create` checks a job against: the objects of one pool that a job can name. */
export interface PoolInventory {
  readonly vms: readonly {
    readonly uuid: string
    readonly name: string
    readonly tags: readonly string[]
    readonly kind: 'vm' | 'template' | 'snapshot' | 'control-domain'
  }[]
  readonly srs: readonly { readonly uuid: string; readonly name: string; readonly contentType: string }[]
  readonly networks: readonly { readonly uuid: string; readonly name: string }[]
  /** the pool's default SR uuid, if set */
  readonly defaultSr: string | undefined
  /** the pool's disks, so that a disk's uuid given as a VM is named for what it is */
  readonly vdis?: readonly { readonly uuid: string; readonly name: string; readonly isSnapshot: boolean }[]
}

export type JobWarnFn = (code: string, message: string) => void

/** Reads the VMs, SRs, networks and default SR of a pool. */
export async function readInventory(
  client: XapiClient,
  options: { signal?: AbortSignal } = {},
): Promise<PoolInventory> {
  const call = options.signal === undefined ? {} : { signal: options.signal }
  const [vms, srs, networks, pools, vdis] = await Promise.all([
    client.getAllRecords('VM', call),
    client.getAllRecords('SR', call),
    client.getAllRecords('network', call),
    client.getAllRecords('pool', call),
    client.getAllRecords('VDI', call),
  ])
  const pool = [...pools.values()][0]
  return {
    vms: [...vms.values()].map(vm => ({
      uuid: vm.uuid,
      name: vm.name_label,
      tags: vm.tags,
      kind: vm.is_control_domain
        ? 'control-domain'
        : vm.is_a_snapshot
          ? 'snapshot'
          : vm.is_a_template
            ? 'template'
            : 'vm',
    })),
    srs: [...srs.values()].map(sr => ({ uuid: sr.uuid, name: sr.name_label, contentType: sr.content_type })),
    networks: [...networks.values()].map(network => ({ uuid: network.uuid, name: network.name_label })),
    defaultSr: pool === undefined ? undefined : srs.get(pool.default_SR)?.uuid,
    vdis: [...vdis.values()].map(vdi => ({ uuid: vdi.uuid, name: vdi.name_label, isSnapshot: vdi.is_a_snapshot })),
  }
}

/** SRs that can hold VM disks: not ISO libraries, not removable media. */
function holdsDisks(contentType: string): boolean {
  return contentType !== 'iso' && contentType !== 'disk'
}

/**
 * Checks a new job against its pools before it is saved: every `--vm` is a VM (not a template,
 * snapshot or dom0) of the source pool, every SR exists on the target pool and holds disks (with
 * no `--sr`, the target's default SR is used), every network in the map exists on its side.
 * Returns the job with its SRs filled in. Tags and `--all-vms` that match nothing yet only warn:
 * VMs can be tagged later.
 * @throws ValidationError `VM_NOT_FOUND`, `VM_NOT_REPLICABLE`, `SR_NOT_FOUND`, `SR_NOT_USABLE`, `NO_DEFAULT_SR`, `NETWORK_NOT_FOUND`
 */
export function checkJob(job: Job, source: PoolInventory, target: PoolInventory, warn?: JobWarnFn): Job {
  for (const uuid of job.vms.uuids) {
    const vm = source.vms.find(candidate => candidate.uuid.toLowerCase() === uuid)
    if (vm === undefined) {
      const vdi = source.vdis?.find(candidate => candidate.uuid.toLowerCase() === uuid)
      if (vdi !== undefined)
        throw new ValidationError(
          'VM_NOT_REPLICABLE',
          `${uuid} ("${vdi.name}") on pool "${job.source}" is a ${vdi.isSnapshot ? 'snapshot disk (VDI)' : 'disk (VDI)'}, not a VM; give the uuid of the VM it belongs to (xen-cr vms ${job.source})`,
        )
      throw vmNotFound(uuid, `source pool "${job.source}"`, 'check the uuid (xe vm-list) and --source')
    }
    if (vm.kind !== 'vm') {
      throw new ValidationError(
        'VM_NOT_REPLICABLE',
        `${uuid} ("${vm.name}") on pool "${job.source}" is a ${vm.kind}, not a VM; give the uuid of a VM`,
      )
    }
  }
  const replicable = source.vms.filter(vm => vm.kind === 'vm')
  for (const tag of job.vms.tags) {
    if (!replicable.some(vm => vm.tags.includes(tag))) {
      warn?.(
        'TAG_MATCHES_NO_VM',
        `no VM on source pool "${job.source}" has tag "${tag}" yet; the job will replicate those that get it`,
      )
    }
  }
  if (job.vms.all && replicable.length === 0) warn?.('NO_VM', `source pool "${job.source}" has no VM yet`)

  let srs = job.srs
  if (srs.length === 0) {
    if (target.defaultSr === undefined) {
      throw new ValidationError('NO_DEFAULT_SR', `target pool "${job.target}" has no default SR; give --sr UUID`)
    }
    srs = [target.defaultSr.toLowerCase()]
  }
  for (const uuid of srs) {
    const sr = target.srs.find(candidate => candidate.uuid.toLowerCase() === uuid)
    if (sr === undefined)
      throw new ValidationError(
        'SR_NOT_FOUND',
        `SR ${uuid} is not on target pool "${job.target}"; check the uuid (xe sr-list) and --target`,
      )
    if (!holdsDisks(sr.contentType)) {
      throw new ValidationError(
        'SR_NOT_USABLE',
        `SR ${uuid} ("${sr.name}") on pool "${job.target}" holds ${sr.contentType} content, not VM disks; choose another --sr`,
      )
    }
  }

  const checkSr = job.healthCheck?.sr
  if (checkSr !== undefined && !target.srs.some(candidate => candidate.uuid.toLowerCase() === checkSr))
    throw new ValidationError(
      'SR_NOT_FOUND',
      `SR ${checkSr} (--health-check-sr) is not on target pool "${job.target}"; check the uuid (xe sr-list)`,
    )

  for (const [from, to] of Object.entries(job.networkMap)) {
    if (!source.networks.some(network => network.uuid.toLowerCase() === from)) {
      throw new ValidationError(
        'NETWORK_NOT_FOUND',
        `network ${from} (--network-map source) is not on source pool "${job.source}"`,
      )
    }
    if (!target.networks.some(network => network.uuid.toLowerCase() === to)) {
      throw new ValidationError(
        'NETWORK_NOT_FOUND',
        `network ${to} (--network-map target) is not on target pool "${job.target}"`,
      )
    }
  }
  return { ...job, srs }
}
