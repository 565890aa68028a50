import { readFile, stat } from 'node:fs/promises'
import { ConfigError } from '../errors.js'
import type { Env } from './config-paths.js'
import type { PoolConfig } from './types.js'
import type { WarnFn } from './validate-config.js'

/** Asks the user for a password without echoing it; only the CLI can provide one. */
export type PasswordPrompt = (question: string) => Promise<string>

export interface ResolvePasswordOptions {
  env?: Env
  warn?: WarnFn
  /** for pools without a password source; absent when nobody is at a terminal */
  prompt?: PasswordPrompt
}

/**
 * Reads a pool's password from its source, at connect time (so a rotated password file is picked
 * up without reloading). The password never appears in any message, warning or error.
 * @throws ConfigError `PASSWORD_FILE_UNREADABLE`, `PASSWORD_EMPTY`, `PASSWORD_ENV_UNSET`, `PASSWORD_MISSING`
 */
export async function resolvePassword(pool: PoolConfig, options: ResolvePasswordOptions = {}): Promise<string> {
  const env = options.env ?? process.env
  const source = pool.password
  const key = `pools.${pool.name}`
  switch (source.kind) {
    case 'literal':
      return source.value
    case 'prompt': {
      const missing = (why: string): ConfigError =>
        new ConfigError(
          'PASSWORD_MISSING',
          `pool "${pool.name}": ${why}; add passwordFile or passwordEnv to ${key} in the config`,
          {
            key: `${key}.passwordFile`,
          },
        )
      if (options.prompt === undefined) throw missing('no password source and no terminal to ask on')
      const answer = await options.prompt(`Password for ${pool.user} on pool "${pool.name}" (${pool.url}): `)
      if (answer === '') throw missing('no password given')
      return answer
    }
    case 'env': {
      const value = env[source.variable]
      if (value === undefined || value === '') {
        throw new ConfigError(
          'PASSWORD_ENV_UNSET',
          `pool "${pool.name}": environment variable ${source.variable} (passwordEnv) is not set; export it before running xen-cr`,
          { key: `${key}.passwordEnv` },
        )
      }
      return value
    }
    case 'file': {
      let text: string
      try {
        const stats = await stat(source.path)
        // 0o077: readable or writable by group or others
        if ((stats.mode & 0o077) !== 0) {
          options.warn?.(
            'PASSWORD_FILE_MODE',
            `pool "${pool.name}": password file ${source.path} is accessible by other users; chmod 600 it`,
          )
        }
        text = await readFile(source.path, 'utf8')
      } catch (error) {
        const code = error instanceof Error && 'code' in error ? String(error.code) : 'error'
        throw new ConfigError(
          'PASSWORD_FILE_UNREADABLE',
          `pool "${pool.name}": cannot read password file ${source.path} (${code}); create it with the password and chmod 600`,
          { file: source.path, key: `${key}.passwordFile` },
          { cause: error },
        )
      }
      // editors and `echo` add a final newline that is not part of the password
      const password = text.replace(/\r?\n$/, '')
      if (password === '') {
        throw new ConfigError(
          'PASSWORD_EMPTY',
          `pool "${pool.name}": password file ${source.path} is empty; write the password into it`,
          {
            file: source.path,
            key: `${key}.passwordFile`,
          },
        )
      }
      return password
    }
  }
}
