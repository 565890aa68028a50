import { describe, expect, it } from 'vitest'
import { CaptureStream } from '../../../test/helpers/capture-stream.js'
import type { Job } from '../../jobs/types.js'
import type { OutputEvent } from './events.js'
import { createOutput, type OutputOptions } from './output.js'

const ESC = '\u001b['
const NOW = new Date('2026-11-26T14:00:00.000Z')

const job: Job = {
  id: '11111111-2222-4333-8444-555555555555',
  name: 'nightly',
  enabled: true,
  source: 'src',
  vms: { uuids: [], tags: ['cr'], all: false },
  target: 'tgt',
  srs: ['66666666-2222-4333-8444-555555555555'],
  schedules: [
    {
      id: '77777777-2222-4333-8444-555555555555',
      timing: { kind: 'interval', interval: '1h', intervalMs: 3_600_000 },
      retention: 3,
    },
  ],
  concurrency: 2,
  fullInterval: 0,
  networkMap: {},
  createdAt: NOW.toISOString(),
}
const vm = { uuid: 'aaaaaaaa-2222-4333-8444-555555555555', name: 'web' }
const disk = { uuid: 'bbbbbbbb-2222-4333-8444-555555555555', name: 'web disk', userdevice: '0' }

function make(options: Partial<OutputOptions> & { tty?: boolean; columns?: number } = {}) {
  const stdout = new CaptureStream({
    isTTY: options.tty === true,
    ...(options.columns === undefined ? {} : { columns: options.columns }),
  })
  const stderr = new CaptureStream({ isTTY: options.tty === true })
  const output = createOutput({
    stdout,
    stderr,
    env: {},
    json: false,
    quiet: false,
    verbose: false,
    color: true,
    now: () => NOW,
    ...options,
  })
  return { output, stdout, stderr }
}

const progress = (bytes: number): OutputEvent => ({
  kind: 'disk-progress',
  vm,
  srUuid: job.srs[0] ?? '',
  disk,
  mode: 'full',
  bytes,
  virtualSize: 10 * 1024 ** 3,
})

describe('createOutput', () => {
  it('writes NDJSON with --json: one parseable object per event with time and schemaVersion, errors alone on stderr', () => {
    const { output, stdout, stderr } = make({ json: true })
    output.emit({ kind: 'job-created', job, crontab: '*/15 * * * * x' })
    output.warn('W', 'careful')
    output.emit({ kind: 'error', code: 'E', message: 'broken', exitCode: 2 })
    output.close()
    const events = stdout.lines.map(line => JSON.parse(line) as Record<string, unknown>)
    expect(events.map(event => event['kind'])).toEqual(['job-created', 'warning'])
    expect(events[0]).toMatchObject({ job: { id: job.id }, time: NOW.toISOString(), schemaVersion: 1 })
    expect(stderr.lines.map(line => JSON.parse(line) as Record<string, unknown>)).toEqual([
      { kind: 'error', code: 'E', message: 'broken', exitCode: 2, time: NOW.toISOString(), schemaVersion: 1 },
    ])
    expect(stdout.text).not.toContain(ESC)
  })

  it('writes plain timestamped lines when not a TTY, results bare, diagnostics to stderr', () => {
    const { output, stdout, stderr } = make()
    output.emit({ kind: 'info', message: 'hello' })
    output.emit({ kind: 'job-show', job, crontab: 'C' })
    output.warn('W', 'careful')
    expect(stdout.lines[0]).toBe(`${NOW.toISOString()} hello`)
    expect(stdout.lines[1]).toBe(`job id: ${job.id}`)
    expect(stdout.lines).toContain(`schedule id: ${job.schedules[0]?.id}`)
    expect(stderr.lines).toEqual([`${NOW.toISOString()} warning careful [W]`])
    expect(stdout.text + stderr.text).not.toContain(ESC)
  })

  it('prints a plain progress line per milestone, not per event', () => {
    const { output, stdout } = make()
    for (const bytes of [0, 1, 2, 1024 ** 3, 1024 ** 3 + 5, 2 * 1024 ** 3]) output.emit(progress(bytes))
    output.emit({
      kind: 'vm-done',
      result: { status: 'success', vm, mode: 'full', bytes: 3 * 1024 ** 3, disks: 1, durationMs: 61_000, replicas: [] },
    })
    expect(stdout.lines).toHaveLength(4)
    expect(stdout.lines[3]).toContain('web: full, 3 GiB sent in 1m01s')
  })

  it('colours a TTY, and honours NO_COLOR and --no-color', () => {
    const colour = make({ tty: true, env: { TERM: 'xterm' } })
    colour.output.warn('W', 'careful')
    colour.output.close()
    expect(colour.stderr.text).toContain(ESC)
    for (const options of [{ env: { NO_COLOR: '1', TERM: 'xterm' } }, { color: false, env: { TERM: 'xterm' } }]) {
      const plain = make({ tty: true, ...options })
      plain.output.warn('W', 'careful')
      plain.output.emit({ kind: 'job-list', jobs: [job] })
      plain.output.close()
      expect(plain.stderr.text).toContain('careful')
      expect(plain.stderr.text + plain.stdout.text).not.toContain(ESC)
    }
  })

  it('keeps a TTY spinner for progress and prints results and errors above it', () => {
    const { output, stdout, stderr } = make({ tty: true, env: { NO_COLOR: '1' } })
    output.emit({ kind: 'vm-start', vm, plan: { mode: 'full' } as never })
    output.emit(progress(1024))
    output.emit({
      kind: 'vm-done',
      result: { status: 'failed', vm, durationMs: 5, error: { code: 'X', message: 'it broke' } },
    })
    output.close()
    expect(stderr.text).toContain('✗ web: it broke [X]')
    // ora draws the first frame at start and later frames on its own timer
    expect(stdout.text).toContain('web: full')
  })

  it('treats a terminal that reports 0 columns as a log, since ora would clear endless lines there', () => {
    const { output, stdout } = make({ tty: true, columns: 0 })
    expect(output.mode).toBe('plain')
    output.emit({ kind: 'vm-start', vm, plan: { mode: 'full' } as never })
    output.close()
    expect(stdout.text).toBe(`${NOW.toISOString()} web: full\n`)
    expect(make({ tty: true }).output.mode).toBe('tty')
  })

  it('--quiet keeps results and errors only; debug needs --verbose', () => {
    const quiet = make({ quiet: true })
    quiet.output.emit({ kind: 'info', message: 'hello' })
    quiet.output.warn('W', 'careful')
    quiet.output.emit(progress(1))
    quiet.output.emit({ kind: 'debug', message: 'detail' })
    quiet.output.emit({ kind: 'job-deleted', id: job.id, name: job.name })
    quiet.output.emit({ kind: 'error', code: 'E', message: 'broken', exitCode: 1 })
    expect(quiet.stdout.lines).toEqual([`deleted job ${job.id} (nightly)`])
    expect(quiet.stderr.lines).toEqual([`${NOW.toISOString()} error broken [E]`])
    const verbose = make({ verbose: true })
    verbose.output.emit({ kind: 'debug', message: 'detail' })
    expect(verbose.stdout.lines).toEqual([`${NOW.toISOString()} detail`])
  })

  it('shows a spinner for a wait without bytes on a terminal (ora, on stderr), and nothing in a log or --json', async () => {
    const tty = make({ tty: true })
    const end = tty.output.activity('logging in to pool source')
    // ora is imported on demand: poll until its first frame is written
    for (let i = 0; i < 200 && !tty.stderr.text.includes('logging in to pool source'); i++) {
      await new Promise(resolve => setTimeout(resolve, 25))
    }
    end()
    expect(tty.stderr.text).toContain('logging in to pool source')
    expect(tty.stdout.text).toBe('')
    const framesWhenEnded = tty.stderr.chunks.length
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(tty.stderr.chunks.length).toBe(framesWhenEnded)

    for (const quiet of [make({ tty: false }), make({ tty: true, json: true }), make({ tty: true, quiet: true })]) {
      const endQuiet = quiet.output.activity('logging in to pool source')
      await new Promise(resolve => setTimeout(resolve, 200))
      endQuiet()
      expect(quiet.stderr.text + quiet.stdout.text).toBe('')
    }
  })
})
