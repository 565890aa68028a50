/**
 * `xen-cr seed` — attach seed metadata to a hand-made copy — and the guided offline seed,
 * `xen-cr seed export` / `xen-cr seed import`. The work is in `replication/seed/`; here the
 * flags, the pools, and the events.
 */
import { resolve } from 'node:path'
import { Option, type Command } from 'commander'
import { ConfigError, ConnectionError, UsageError, isXapiError } from '../errors.js'
import { isUuid } from '../jobs/uuid.js'
import type { Job } from '../jobs/types.js'
import type { SeedWarningEvent } from '../replication/seed/export-seed.js'
import type { SeedRequest } from '../replication/seed/plan-seed.js'
import { SeedRefusal } from '../replication/seed/seed-refusal.js'
import type { VerifyMode } from '../replication/seed/verify-seed.js'
import type { XapiClient } from '../xapi/client.js'
import { parsePoolUrl } from '../xapi/pool-url.js'
import type { CliContext } from './context.js'
import { connectJobPools, contextOf } from './context.js'
import type { SeedCommandEvent } from './output/events.js'

/** A job from the store, or only the ids of a job defined elsewhere (Xen Orchestra). */
export interface SeedJobRef {
  readonly job: Job | undefined
  readonly id: string
  readonly scheduleId: string
}

/** Finds `--job` in the store; a uuid that is not there is accepted as an outside job's id. */
export async function resolveSeedJob(
  context: CliContext,
  handle: string,
  scheduleId: string | undefined,
): Promise<SeedJobRef> {
  const job = await (await context.jobStore()).find(handle)
  if (job === undefined) {
    if (!isUuid(handle))
      throw new UsageError(
        'JOB_NOT_FOUND',
        `job "${handle}" is not in the job store; give its name or id (xen-cr job list), or the uuid of a Xen Orchestra job`,
      )
    if (scheduleId === undefined)
      throw new UsageError(
        'SCHEDULE_REQUIRED',
        `job ${handle} is not in the job store: give its schedule id with --schedule`,
      )
    return { job: undefined, id: handle.toLowerCase(), scheduleId }
  }
  const schedule =
    scheduleId === undefined ? job.schedules[0] : job.schedules.find(s => s.id === scheduleId.toLowerCase())
  if (schedule === undefined) {
    throw new UsageError(
      'SCHEDULE_NOT_FOUND',
      scheduleId === undefined
        ? `job ${job.name} has no schedule`
        : `job ${job.name} has no schedule ${scheduleId}; see xen-cr job show ${job.name}`,
    )
  }
  return { job, id: job.id, scheduleId: schedule.id }
}

function looksLikeUrl(value: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(value) || value.includes('@') || value.includes('.') || value.includes(':')
}

/**
 * A pool given as a configured name, or as a URL: with credentials in it (xo-cr-seed's form),
 * or without, when a configured pool has that URL (its credentials are used).
 */
export async function connectSeedPool(
  context: CliContext,
  value: string,
  options: { allowUnauthorized: boolean; dropIn?: boolean },
): Promise<XapiClient> {
  const config = await context.loadConfig()
  const { getPool } = await import('../config/connect-pool.js')
  if (Object.hasOwn(config.pools, value) || !looksLikeUrl(value))
    return context.connect(getPool(config, value, context.io.env).name)
  const parsed = parsePoolUrl(value)
  if (parsed.password === undefined) {
    const match = Object.values(config.pools).find(pool => parsePoolUrl(pool.url).origin.href === parsed.origin.href)
    if (match === undefined) {
      throw new ConfigError(
        'POOL_CREDENTIALS_MISSING',
        `no credentials for ${parsed.origin.protocol}//${parsed.origin.host}: configure it as a pool (passwordFile) and pass its name, or put user:password in the URL`,
      )
    }
    return context.connect(match.name)
  }
  context.output.warn(
    'CREDENTIALS_IN_ARGV',
    `credentials in a command-line URL are visible to other users of this host (ps, /proc); put the pool in the config with a passwordFile and pass its name instead`,
  )
  let client: XapiClient
  // loaded on use, not with the command tree: `--help` and the other commands skip the client (issue 11)
  const { XapiClient: Client } = await import('../xapi/client.js')
  try {
    client = await Client.connect({
      url: value,
      user: '',
      password: '',
      allowUnauthorized: options.allowUnauthorized,
      signal: context.signal,
    })
  } catch (error) {
    if (error instanceof ConnectionError && error.code === 'POOL_TLS' && !options.allowUnauthorized) {
      // xo-cr-seed connected with allowUnauthorized and never checked a certificate; scripts
      // written for it meet the check here for the first time.
      const why = options.dropIn
        ? 'xo-cr-seed never verified certificates, xen-cr-seed does'
        : 'the certificate is not trusted'
      throw new ConnectionError(
        'POOL_TLS',
        `${error.message} (${why}: add --allow-unauthorized to accept it, or trust its CA with NODE_EXTRA_CA_CERTS)`,
        error.url === undefined ? {} : { url: error.url },
        { cause: error },
      )
    }
    throw error
  }
  if (options.allowUnauthorized)
    context.output.warn(
      'TLS_NOT_VERIFIED',
      `the TLS certificate of ${client.url} is not verified (--allow-unauthorized)`,
    )
  context.defer(() => client.close())
  return client
}

/**
 * For a job outside the store: the configured pools holding the snapshot and the target VM
 * (the seed document's four-uuid form gives no URLs).
 */
async function findPoolsHolding(
  context: CliContext,
  snapshotUuid: string,
  targetVmUuid: string,
): Promise<{ source: XapiClient; target: XapiClient }> {
  const config = await context.loadConfig()
  let source: XapiClient | undefined
  let target: XapiClient | undefined
  for (const name of Object.keys(config.pools)) {
    const client = await context.connect(name)
    const holds = async (uuid: string): Promise<boolean> =>
      client.getByUuid('VM', uuid, { signal: context.signal }).then(
        () => true,
        (error: unknown) => {
          if (isXapiError(error, 'UUID_INVALID')) return false
          throw error
        },
      )
    if (source === undefined && (await holds(snapshotUuid))) source = client
    if (target === undefined && (await holds(targetVmUuid))) target = client
    if (source !== undefined && target !== undefined) return { source, target }
  }
  const [code, missing] =
    source === undefined
      ? (['SEED_SNAPSHOT_NOT_FOUND', `snapshot ${snapshotUuid}`] as const)
      : (['SEED_TARGET_NOT_FOUND', `VM ${targetVmUuid}`] as const)
  throw new SeedRefusal(
    code,
    `no configured pool holds ${missing}; check the uuid, or give --source and --target (pool names or URLs)`,
  )
}

interface SeedFlags {
  job?: string
  schedule?: string
  snapshot?: string
  targetVm?: string
  source?: string
  target?: string
  dryRun?: boolean
  verify?: boolean | string
  sampleBlocks?: string
  allowUnauthorized?: boolean
  dropIn?: boolean
}

function verifyMode(value: boolean | string | undefined): VerifyMode | undefined {
  if (value === undefined || value === false) return undefined
  if (value === true || value === 'full') return 'full'
  if (value === 'sample') return 'sample'
  throw new UsageError('INVALID_OPTION', `--verify takes no value, "full" or "sample", not "${value}"`)
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError('MISSING_OPTION', `${flag} is required`)
  return value
}

function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new UsageError('INVALID_OPTION', `${flag} must be a positive whole number, got "${value}"`)
  return n
}

function forward(context: CliContext): (event: SeedCommandEvent | SeedWarningEvent) => void {
  return event => {
    if (event.kind === 'seed-warning') context.output.warn(event.code, event.message)
    else context.output.emit(event)
  }
}

/** Runs one seed from flags; shared with the `xen-cr-seed` drop-in. */
export async function runSeed(context: CliContext, flags: SeedFlags): Promise<void> {
  const snapshot = required(flags.snapshot, '--snapshot')
  const targetVm = required(flags.targetVm, '--target-vm')
  const handle = required(flags.job, '--job')
  const mode = verifyMode(flags.verify)
  const sampleBlocks = positiveInt(flags.sampleBlocks, '--sample-blocks')
  // Malformed ids are refused before the job store or any pool is read. The seed planning (like
  // the seed engine below) loads with a seed command only, not with the command tree (issue 11).
  const { checkSeedIds } = await import('../replication/seed/plan-seed.js')
  checkSeedIds({ snapshot, targetVm, ...(flags.schedule === undefined ? {} : { schedule: flags.schedule }) })
  const jobRef = await resolveSeedJob(context, handle, flags.schedule)
  const sourcePool = flags.source ?? jobRef.job?.source
  const targetPool = flags.target ?? jobRef.job?.target
  const connectOptions = { allowUnauthorized: flags.allowUnauthorized === true, dropIn: flags.dropIn === true }
  let source: XapiClient
  let target: XapiClient
  if (sourcePool === undefined && targetPool === undefined) {
    ;({ source, target } = await findPoolsHolding(context, snapshot.toLowerCase(), targetVm.toLowerCase()))
  } else if (sourcePool === undefined || targetPool === undefined) {
    throw new UsageError(
      'POOL_REQUIRED',
      `job ${jobRef.id} is not in the job store: give both --source and --target (pool names or URLs)`,
    )
  } else {
    source = await connectSeedPool(context, sourcePool, connectOptions)
    target = targetPool === sourcePool ? source : await connectSeedPool(context, targetPool, connectOptions)
  }
  const job = jobRef.job
  const request: SeedRequest = {
    job: job === undefined ? { id: jobRef.id } : { id: job.id, name: job.name, srs: job.srs, vms: job.vms },
    scheduleId: jobRef.scheduleId,
    snapshotUuid: snapshot.toLowerCase(),
    targetVmUuid: targetVm.toLowerCase(),
  }
  // the seed engine loads with a seed command only, not with the command tree (issue 11, fast start)
  const { seed } = await import('../replication/seed/seed.js')
  const result = await seed({
    request,
    source,
    target,
    dryRun: flags.dryRun === true,
    ...(mode === undefined ? {} : { verify: mode }),
    ...(sampleBlocks === undefined ? {} : { sampleBlocks }),
    signal: context.signal,
    onEvent: forward(context),
    ...(context.io.now === undefined ? {} : { now: context.io.now }),
  })
  if (flags.dryRun !== true) {
    context.output.emit({
      kind: 'seed-done',
      written: result.written,
      job: job?.name ?? jobRef.id,
      replica: { uuid: result.plan.targetVm.uuid, name: result.plan.replicaName },
    })
  }
}

interface ExportFlags {
  job?: string
  schedule?: string
  vm?: string
  out?: string
  format?: string
}

interface ImportFlags {
  job?: string
  from?: string
  sr?: string
}

async function storedJob(context: CliContext, handle: string): Promise<Job> {
  return (await context.jobStore()).get(handle)
}

/**
 * `seed` declares `--job` and `--schedule` too, and commander (without positional options on
 * the program, which would change every global flag) lets the parent claim them even after
 * `export`/`import`: read them from whichever command got them.
 */
function withParentFlags<T extends { job?: string; schedule?: string }>(own: T, command: Command): T {
  const parent = command.parent?.opts<{ job?: string; schedule?: string }>() ?? {}
  const job = own.job ?? parent.job
  const schedule = own.schedule ?? parent.schedule
  return { ...own, ...(job === undefined ? {} : { job }), ...(schedule === undefined ? {} : { schedule }) }
}

/** `xen-cr seed`, `seed export`, `seed import`. */
export function registerSeedCommand(program: Command): void {
  const cmd = program
    .command('seed')
    .description(
      'make a hand-made copy of a snapshot the base of a job (validated; nothing is written on refusal, exit 5)',
    )
    .option(
      '--job <job>',
      'job name or id (a Xen Orchestra job uuid not in the store works with --schedule, --source, --target)',
    )
    .option('--schedule <id>', "schedule id (default: the job's first schedule)")
    .option('--snapshot <uuid>', 'the source snapshot the copy was made from')
    .option('--target-vm <uuid>', 'the imported copy on the target pool (halted, never started)')
    .option('--source <pool|url>', "source pool: configured name or URL (default: the job's)")
    .option('--target <pool|url>', "target pool: configured name or URL (default: the job's)")
    .option('--allow-unauthorized', 'accept untrusted TLS certificates for pools given as URLs')
    .option('--dry-run', 'check and show what would be written, write nothing')
    .option(
      '--verify [mode]',
      'before writing, compare each disk pair: full sha256 of the raw exports (default) or "sample" (random 2 MiB blocks)',
    )
    .option('--sample-blocks <n>', 'blocks per disk for --verify=sample (default 8)')
    .addOption(new Option('--drop-in', 'invoked as xen-cr-seed').hideHelp())
    .action(async (flags: SeedFlags, command: Command) => runSeed(contextOf(command), flags))

  cmd
    .command('export')
    .description(
      'guided seed, step 1: snapshot a VM for the job and write its disks (VHD files, or one XVA) and a manifest into a folder',
    )
    .option('--job <job>', 'job name or id')
    .option('--schedule <id>', "schedule id (default: the job's first schedule)")
    .option('--vm <uuid>', 'the source VM')
    .option('--out <dir>', 'folder for the disk files and manifest.json (must hold no seed yet)')
    .option(
      '--format <format>',
      'vhd: one VHD file per disk (default); xva: the whole snapshot as one XVA (GET /export)',
      'vhd',
    )
    .action(async (own: ExportFlags, command: Command) => {
      const context = contextOf(command)
      const flags = withParentFlags(own, command)
      const vm = required(flags.vm, '--vm')
      const out = resolve(context.io.cwd, required(flags.out, '--out'))
      const format = flags.format
      if (format !== 'vhd' && format !== 'xva')
        throw new UsageError('INVALID_OPTION', `--format must be vhd or xva, not "${flags.format ?? ''}"`)
      if (!isUuid(vm)) throw new UsageError('INVALID_OPTION', `--vm must be a uuid, got "${vm}"`)
      const jobRef = await resolveSeedJob(context, required(flags.job, '--job'), flags.schedule)
      const job = jobRef.job
      if (job === undefined)
        throw new UsageError(
          'JOB_NOT_FOUND',
          `job ${jobRef.id} is not in the job store; the guided seed needs a xen-cr job (xen-cr job create --id ${jobRef.id} …)`,
        )
      const source = await context.connect(job.source)
      const { exportSeed } = await import('../replication/seed/export-seed.js')
      const { manifest, manifestPath } = await exportSeed({
        source,
        job: { id: job.id, name: job.name, vms: job.vms },
        scheduleId: jobRef.scheduleId,
        vmUuid: vm.toLowerCase(),
        dir: out,
        format,
        signal: context.signal,
        onEvent: forward(context),
        ...(context.io.now === undefined ? {} : { now: context.io.now }),
      })
      context.output.emit({
        kind: 'seed-exported',
        dir: out,
        manifest: manifestPath,
        snapshot: { uuid: manifest.snapshot.uuid, name: manifest.snapshot.name },
        // an XVA is one file named by every disk of the manifest: counted once
        bytes: [...new Map(manifest.disks.map(d => [d.file, d.bytes])).values()].reduce((n, b) => n + b, 0),
      })
    })

  cmd
    .command('import')
    .description(
      'guided seed, step 2: check the folder, build the replica on the target SR, import the disks, attach the metadata',
    )
    .option('--job <job>', 'job name or id')
    .option('--from <dir>', 'the folder written by seed export')
    .option('--sr <uuid>', "target SR (one of the job's)")
    .action(async (own: ImportFlags, command: Command) => {
      const context = contextOf(command)
      const flags = withParentFlags(own, command)
      const dir = resolve(context.io.cwd, required(flags.from, '--from'))
      const sr = required(flags.sr, '--sr')
      if (!isUuid(sr)) throw new UsageError('INVALID_OPTION', `--sr must be a uuid, got "${sr}"`)
      const job = await storedJob(context, required(flags.job, '--job'))
      const { source, target } = await connectJobPools(context, job)
      const { importSeed } = await import('../replication/seed/import-seed.js')
      const result = await importSeed({
        source,
        target,
        job,
        dir,
        srUuid: sr.toLowerCase(),
        signal: context.signal,
        onEvent: forward(context),
        ...(context.io.now === undefined ? {} : { now: context.io.now }),
      })
      context.output.emit({ kind: 'seed-done', written: true, job: job.name, replica: result.replica })
    })
}
