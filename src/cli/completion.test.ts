import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Command } from 'commander'
import { describe, expect, it } from 'vitest'
import { CaptureStream } from '../../test/helpers/capture-stream.js'
import { bashCompletion, zshCompletion } from './completion.js'
import { buildProgram, run } from './program.js'

const program = buildProgram({ stdout: new CaptureStream(), stderr: new CaptureStream() })

/** Every command path of the program and the long options of each (hidden ones are for scripts, not for completion). */
function commands(command: Command, path: string[] = []): { path: string[]; options: string[] }[] {
  return [
    {
      path,
      options: command.options.flatMap(option => (option.long === undefined || option.hidden ? [] : [option.long])),
    },
    ...command.commands.flatMap(sub => commands(sub, [...path, sub.name()])),
  ]
}

/** What bash completes for `words` (the last one is the word under the cursor), run in a real bash. */
function complete(words: readonly string[], cwd?: string): string[] {
  const script = `${bashCompletion(program)}
COMP_WORDS=(${words.map(word => `'${word}'`).join(' ')})
COMP_CWORD=${words.length - 1}
_xen_cr
printf '%s\\n' "\${COMPREPLY[@]}"
`
  return execFileSync('bash', ['-c', script], { encoding: 'utf8', ...(cwd === undefined ? {} : { cwd }) })
    .split('\n')
    .filter(line => line !== '')
    .sort()
}

describe('completion scripts', () => {
  it('bash -n accepts the bash script', () => {
    expect(() => execFileSync('bash', ['-n'], { input: bashCompletion(program) })).not.toThrow()
  })

  it('name every command, subcommand and option of the program, in both shells', () => {
    const all = commands(program)
    expect(all.length).toBeGreaterThan(20)
    for (const script of [bashCompletion(program), zshCompletion(program)]) {
      for (const { path, options } of all) {
        if (path.length > 0) expect(script, path.join(' ')).toContain(`'${path.join(' ')}'`)
        for (const option of options) expect(script, `${path.join(' ')} ${option}`).toContain(option)
      }
    }
  })

  it('completes commands, subcommands, aliases, options and option values in bash', () => {
    expect(complete(['xen-cr', 'jo'])).toEqual(['job'])
    expect(complete(['xen-cr', 'job', 'e'])).toEqual(['edit', 'enable'])
    // the value of --config is skipped, not taken for a command
    expect(complete(['xen-cr', '--config', 'job', 'job', 'cr'])).toEqual(['create'])
    expect(complete(['xen-cr', 'job', 'create', '--so'])).toEqual(['--source'])
    // an alias leads to its command's options; global options are offered everywhere
    expect(complete(['xen-cr', 'job', 'ls', '--'])).toEqual(expect.arrayContaining(['--json', '--help']))
    expect(complete(['xen-cr', 'run', '--d'])).toEqual(['--dry-run', '--due'])
    expect(complete(['xen-cr', 'completion', ''])).toEqual(['bash', 'zsh'])
    expect(complete(['xen-cr', 'list', '--check', ''])).toEqual([])
  })

  it('completes a file for an option that takes one, and nothing for another value', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xen-cr-completion-'))
    try {
      writeFileSync(join(dir, 'metrics.prom'), '')
      expect(complete(['xen-cr', 'list', '--metrics-file', 'me'], dir)).toEqual(['metrics.prom'])
      expect(complete(['xen-cr', '--config', 'me'], dir)).toEqual(['metrics.prom'])
      expect(complete(['xen-cr', 'list', '--max-age', 'me'], dir)).toEqual([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  // zsh runs the script for real (`.ci/run` installs it): a missing zsh fails here, never skips.
  it('zsh -n accepts the zsh script, and it completes commands, options and paths', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xen-cr-completion-'))
    try {
      const file = join(dir, '_xen-cr')
      writeFileSync(file, zshCompletion(program))
      expect(() => execFileSync('zsh', ['-n', file])).not.toThrow()
      const zsh = (words: readonly string[]): string[] =>
        execFileSync(
          'zsh',
          [
            '-f',
            '-c',
            `compdef() { :; }
source ${file}
_describe() { local -a arr; arr=("\${(@P)\${@[-1]}}"); printf '%s\\n' "\${arr[@]}"; }
compadd() { local -a arr; arr=("\${(@P)\${@[-1]}}"); printf 'value %s\\n' "\${arr[@]}"; }
_files() { echo FILES; }
words=(${words.map(word => `'${word}'`).join(' ')}); CURRENT=${words.length}; _xen_cr`,
          ],
          { encoding: 'utf8' },
        )
          .split('\n')
          .filter(line => line !== '')
      expect(zsh(['xen-cr', '--config', 'x', 'job', 'cr'])).toContain(
        'create:define a job; pools, VMs, SRs and networks are checked against XAPI before it is saved',
      )
      expect(zsh(['xen-cr', 'job', 'create', '--so'])).toContain('--source:source pool (name in the config)')
      expect(zsh(['xen-cr', 'list', '--metrics-file', ''])).toEqual(['FILES'])
      expect(zsh(['xen-cr', 'completion', ''])).toEqual(['bash:bash', 'zsh:zsh'])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('xen-cr completion bash prints the script as it is, and refuses another shell', async () => {
    const stdout = new CaptureStream()
    expect(await run(['completion', 'bash'], { stdout, stderr: new CaptureStream(), env: {}, cwd: tmpdir() })).toBe(0)
    expect(stdout.text).toBe(bashCompletion(program))
    const stderr = new CaptureStream()
    expect(await run(['completion', 'fish'], { stdout: new CaptureStream(), stderr, env: {}, cwd: tmpdir() })).toBe(2)
    expect(stderr.text).toMatch(/bash, zsh/)
  })
})
