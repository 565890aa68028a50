import { stat } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import type { CosmiconfigResult, PublicExplorer } from 'cosmiconfig'
import { ConfigError } from '../errors.js'
import { xdgConfigDir, type Env } from './config-paths.js'
import type { Config } from './types.js'
import { validateConfig, type WarnFn } from './validate-config.js'

const MODULE = 'xen-cr'

/** Searched in the working directory and each parent (cosmiconfig's places plus `xen-cr.config.json`, which the lab writes). */
export const SEARCH_PLACES: readonly string[] = [
  'package.json',
  `.${MODULE}rc`,
  `.${MODULE}rc.json`,
  `.${MODULE}rc.yaml`,
  `.${MODULE}rc.yml`,
  `.${MODULE}rc.js`,
  `.${MODULE}rc.cjs`,
  `.${MODULE}rc.mjs`,
  `.config/${MODULE}rc`,
  `.config/${MODULE}rc.json`,
  `.config/${MODULE}rc.yaml`,
  `.config/${MODULE}rc.yml`,
  `${MODULE}.config.json`,
  `${MODULE}.config.js`,
  `${MODULE}.config.cjs`,
  `${MODULE}.config.mjs`,
]

/** Searched last, in `$XDG_CONFIG_HOME/xen-cr/` (cosmiconfig's global names, plus `xen-cr.config.json`). */
export const GLOBAL_SEARCH_PLACES: readonly string[] = [
  'config',
  'config.json',
  'config.yaml',
  'config.yml',
  'config.js',
  'config.cjs',
  'config.mjs',
  `${MODULE}.config.json`,
]

export interface LoadConfigOptions {
  /** an explicit file (`--config`); beats `XEN_CR_CONFIG`, which beats the search */
  file?: string
  env?: Env
  /** where the search starts and relative paths resolve; default `process.cwd()` */
  cwd?: string
  /** where the upward search stops (inclusive); default the filesystem root */
  stopDir?: string
  warn?: WarnFn
}

/**
 * Finds, reads and validates the configuration. With no file anywhere, returns an empty config
 * (no pools, default settings): commands that need a pool then fail naming where we looked.
 * @throws ConfigError `CONFIG_NOT_FOUND` (explicit file missing), `CONFIG_UNREADABLE`, `CONFIG_PARSE`, `CONFIG_INVALID`
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<Config> {
  const env = options.env ?? process.env
  const cwd = options.cwd ?? process.cwd()
  const explicit = options.file ?? (env['XEN_CR_CONFIG'] === '' ? undefined : env['XEN_CR_CONFIG'])
  const origin = options.file !== undefined ? '--config' : 'XEN_CR_CONFIG'

  let result: CosmiconfigResult
  if (explicit !== undefined) {
    const file = resolve(cwd, explicit)
    const kind = await stat(file).then(
      stats => (stats.isDirectory() ? 'directory' : 'file'),
      () => 'missing',
    )
    if (kind === 'directory') {
      throw new ConfigError(
        'CONFIG_UNREADABLE',
        `config file ${file} (from ${origin}) is a directory; give the path of the file in it, e.g. ${join(file, `${MODULE}.config.json`)}`,
        { file },
      )
    }
    if (kind === 'missing') {
      throw new ConfigError('CONFIG_NOT_FOUND', `config file ${file} (from ${origin}) does not exist; check the path`, {
        file,
      })
    }
    result = await readConfigFile(file, async () => (await explorer(SEARCH_PLACES)).load(file))
  } else {
    result = await searchConfig(cwd, options.stopDir, env)
  }

  if (result === null) {
    return validateConfig(
      {},
      { label: undefined, file: undefined, cwd, env, ...(options.warn === undefined ? {} : { warn: options.warn }) },
    )
  }
  const file = result.filepath
  const label = file.endsWith('package.json') ? `${file}#${MODULE}` : file
  return validateConfig(result.isEmpty === true ? {} : result.config, {
    label,
    file,
    cwd,
    env,
    ...(options.warn === undefined ? {} : { warn: options.warn }),
  })
}

/** Where {@link loadConfig} looks, for "no pool named …" messages. */
export function describeSearch(env: Env): string {
  return `--config, XEN_CR_CONFIG, xen-cr.config.json or .xen-crrc* in the working directory or a parent, package.json#${MODULE}, ${xdgConfigDir(env)}/config.json`
}

/**
 * cosmiconfig and its loaders cost more CPU than the rest of a `job list`: it is imported only
 * when there is a file to read (issue 11).
 */
async function explorer(searchPlaces: readonly string[]): Promise<PublicExplorer> {
  const { cosmiconfig } = await import('cosmiconfig')
  return cosmiconfig(MODULE, { searchPlaces: [...searchPlaces], searchStrategy: 'none', cache: false })
}

/**
 * Whether cosmiconfig has anything to look at in `dir`. Only "no such file" rules a place out;
 * anything else (EACCES, a directory where a file should be) is left to cosmiconfig, so that
 * what it reports is unchanged.
 */
async function mayHoldConfig(dir: string, places: readonly string[]): Promise<boolean> {
  const present = await Promise.all(
    places.map(place =>
      stat(join(dir, place)).then(
        () => true,
        (error: unknown) => {
          const code = errnoOf(error)?.code
          return code !== 'ENOENT' && code !== 'ENOTDIR'
        },
      ),
    ),
  )
  return present.includes(true)
}

async function searchConfig(cwd: string, stopDir: string | undefined, env: Env): Promise<CosmiconfigResult> {
  let local: PublicExplorer | undefined
  const stop = stopDir === undefined ? undefined : resolve(stopDir)
  // Walked here rather than with cosmiconfig's 'global' strategy, whose last stop reads
  // XDG_CONFIG_HOME from process.env instead of the environment this run was given.
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    if (await mayHoldConfig(dir, SEARCH_PLACES)) {
      const found = await readConfigFile(dir, async () => (local ??= await explorer(SEARCH_PLACES)).search(dir))
      if (found !== null) return found
    }
    if (dir === stop || dirname(dir) === dir) break
  }
  const globalDir = xdgConfigDir(env)
  const isDir = await stat(globalDir).then(
    stats => stats.isDirectory(),
    () => false,
  )
  if (!isDir || !(await mayHoldConfig(globalDir, GLOBAL_SEARCH_PLACES))) return null
  return readConfigFile(globalDir, async () => (await explorer(GLOBAL_SEARCH_PLACES)).search(globalDir))
}

async function readConfigFile(where: string, read: () => Promise<CosmiconfigResult>): Promise<CosmiconfigResult> {
  try {
    return await read()
  } catch (error) {
    // A file we may not read is not a syntax problem: "fix its syntax" would send the user to the wrong place.
    const errno = errnoOf(error)
    if (errno !== undefined) {
      const file = errno.path ?? where
      throw new ConfigError(
        'CONFIG_UNREADABLE',
        `config file ${file} cannot be read (${errno.code}); check its permissions`,
        { file },
        { cause: error },
      )
    }
    const reason = parseErrorReason(error)
    const file =
      error instanceof Error && 'filepath' in error && typeof error.filepath === 'string' ? error.filepath : where
    throw new ConfigError(
      'CONFIG_PARSE',
      `${file}: cannot be read as configuration (${reason}); fix its syntax`,
      { file },
      { cause: error },
    )
  }
}

/** A file-system error (EACCES, EISDIR, EIO…) as Node reports it: a `code` and the `syscall` that failed. */
function errnoOf(error: unknown): { code: string; path: string | undefined } | undefined {
  if (!(error instanceof Error) || !('code' in error) || !('syscall' in error) || typeof error.code !== 'string')
    return undefined
  return { code: error.code, path: 'path' in error && typeof error.path === 'string' ? error.path : undefined }
}

/**
 * The one line of a loader's error that says what is wrong: cosmiconfig's messages start with
 * "JSON Error in <file>:" and carry multi-line code frames, which would break the one-line rule.
 */
function parseErrorReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const lines = error.message
    .split('\n')
    .map(line => line.trim())
    .filter(
      line =>
        line !== '' &&
        !/^(>|\d+ \||\||-+\^)/.test(line) &&
        !/ Error in .*:$/.test(line) &&
        !/ Error in /.test(line.slice(0, 20)),
    )
  return lines[0]?.replace(/\s+$/, '') ?? error.name
}
