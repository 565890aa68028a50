import { stripVTControlCharacters } from 'node:util'
import { describe, expect, it } from 'vitest'
import { CaptureStream } from '../../../test/helpers/capture-stream.js'
import type { VmResult } from '../../replication/events.js'
import type { OutputEvent } from './events.js'
import { createOutput, type OutputOptions } from './output.js'
import { wrap } from './transfer-board.js'

const MiB = 1024 ** 2
const START = Date.parse('2026-11-26T14:00:00.000Z')
const vm = { uuid: 'aaaaaaaa-2222-4333-8444-555555555555', name: 'web' }
const db = { uuid: 'cccccccc-2222-4333-8444-555555555555', name: 'db' }
const sr = '66666666-2222-4333-8444-555555555555'
/** Whether `text` sets a colour or weight (cursor moves are fine without colour). */
const coloured = (text: string): boolean =>
  text
    .split('\u001b[')
    .slice(1)
    .some(rest => /^[0-9;]*m/.test(rest))

/** A clock the test moves: rates, ETAs and the 30 s rule are computed, never timed. */
function clock() {
  let t = START
  return { now: () => new Date(t), tick: (ms: number) => (t += ms) }
}

function make(options: Partial<OutputOptions> & { tty?: boolean; columns?: number; now?: () => Date }) {
  const stdout = new CaptureStream({ isTTY: options.tty === true, columns: options.columns ?? 120 })
  const stderr = new CaptureStream({ isTTY: options.tty === true })
  const output = createOutput({
    stdout,
    stderr,
    env: { TERM: 'xterm' },
    json: false,
    quiet: false,
    verbose: false,
    color: true,
    ...options,
  })
  return { output, stdout, stderr }
}

const disk = (userdevice: string) => ({
  uuid: `bbbbbbbb-2222-4333-8444-55555555555${userdevice}`,
  name: 'd',
  userdevice,
})

function progress(
  of: { uuid: string; name: string },
  userdevice: string,
  bytes: number,
  total: number | undefined,
  mode: 'full' | 'delta' = 'full',
): OutputEvent {
  return {
    kind: 'disk-progress',
    vm: of,
    srUuid: sr,
    disk: disk(userdevice),
    mode,
    bytes,
    ...(total === undefined ? {} : { total }),
    // the virtual size must never show as the amount to send
    virtualSize: 10 * 1024 ** 3,
  }
}

const success = (of: typeof vm, bytes: number, disks = 1): VmResult => ({
  status: 'success',
  vm: of,
  mode: 'full',
  bytes,
  disks,
  durationMs: 4_000,
  replicas: [],
})
const failure = (of: typeof vm): VmResult => ({
  status: 'failed',
  vm: of,
  durationMs: 1_000,
  error: { code: 'SR_BACKEND_FAILURE_44', message: 'no space' },
})

/** A pass of two VMs: web sends 64 MiB in 1 MiB steps, db fails. */
function pass(emit: (event: OutputEvent) => void, tick: (ms: number) => void): void {
  emit({ kind: 'pass-start', job: { id: 'j', name: 'nightly' }, scheduleId: 's', vms: 2 })
  emit({ kind: 'vm-start', vm, plan: { mode: 'full' } as never })
  emit({ kind: 'vm-start', vm: db, plan: { mode: 'full' } as never })
  for (let mib = 1; mib <= 64; mib++) {
    tick(150)
    emit(progress(vm, '0', mib * MiB, 64 * MiB))
  }
  emit({ kind: 'vm-done', result: success(vm, 64 * MiB) })
  emit({ kind: 'vm-done', result: failure(db) })
  emit({ kind: 'pass-done', results: [success(vm, 64 * MiB), failure(db)] })
}

describe('the terminal renderer', () => {
  it('draws a bar per disk with the bytes of the exact stream length, a rate and an ETA, and a total line', () => {
    const { now, tick } = clock()
    const { output, stdout } = make({ tty: true, now })
    output.emit({ kind: 'vm-start', vm, plan: { mode: 'full' } as never })
    output.emit(progress(vm, '0', 1 * MiB, 64 * MiB))
    output.emit(progress(vm, '1', 1 * MiB, 16 * MiB))
    tick(1_000)
    output.emit(progress(vm, '0', 17 * MiB, 64 * MiB))
    tick(1_000)
    output.emit(progress(vm, '1', 16 * MiB, 16 * MiB))
    const screen = stripVTControlCharacters(stdout.text)
    output.close()
    expect(screen).toMatch(/web disk 0 full +█+░+ +17 MiB of 64 MiB +16 MiB\/s +ETA 3s/)
    expect(screen).toMatch(/web disk 1 full +█+ +16 MiB of 16 MiB +done/)
    expect(screen).toMatch(/total +█+░+ +33 MiB of 80 MiB +disks 1\/2 done/)
    expect(screen).not.toContain('10 GiB')
  })

  it('ends a pass with a summary table: VM, mode, disks, bytes, duration, average rate, result', () => {
    const { now, tick } = clock()
    const { output, stdout, stderr } = make({ tty: true, now })
    const exitListeners = process.listenerCount('exit')
    output.emit(progress(vm, '0', MiB, 64 * MiB))
    // while bars are drawn, an exit without cleanup (a second Ctrl-C) still gives the cursor back
    expect(process.listenerCount('exit')).toBe(exitListeners + 1)
    pass(e => output.emit(e), tick)
    output.close()
    expect(process.listenerCount('exit')).toBe(exitListeners)
    const screen = stripVTControlCharacters(stdout.text)
    const table = screen.split('\n').filter(line => line.startsWith('│'))
    expect(table[0]).toMatch(/│ VM +│ MODE +│ DISKS +│ SENT +│ DURATION +│ AVG RATE +│ RESULT +│/)
    expect(table[1]).toMatch(/│ web +│ full +│ 1 +│ 64 MiB +│ 4s +│ 16 MiB\/s +│ ok +│/)
    expect(table[2]).toMatch(/│ db +│ - +│ - +│ - +│ 1s +│ - +│ failed \[SR_BACKEND_FAILURE_44\] +│/)
    expect(screen).toMatch(/✓ web: full, 64 MiB sent in 4s/)
    expect(screen).toMatch(/1 of 2 VMs replicated, 1 failed\n/)
    expect(stripVTControlCharacters(stderr.text)).toBe('✗ db: no space [SR_BACKEND_FAILURE_44]\n')
  })

  it('has no colour with NO_COLOR or --no-color, bars and table included', () => {
    for (const options of [{ env: { NO_COLOR: '1', TERM: 'xterm' } }, { color: false }]) {
      const { now, tick } = clock()
      const { output, stdout, stderr } = make({ tty: true, now, ...options })
      pass(e => output.emit(e), tick)
      output.close()
      expect(stdout.text).toMatch(/█/)
      expect(coloured(stdout.text + stderr.text)).toBe(false)
    }
    const { now, tick } = clock()
    const withColour = make({ tty: true, now })
    pass(e => withColour.output.emit(e), tick)
    withColour.output.close()
    expect(coloured(withColour.stdout.text)).toBe(true)
  })

  it('wraps what it prints above the live lines itself (the terminal does not wrap while they are drawn)', () => {
    const red = (text: string) => `\u001b[31m${text}\u001b[39m`
    const rows = wrap(`${red('warning')} ${'x'.repeat(22)}`, 10)
    expect(rows.map(row => stripVTControlCharacters(row))).toEqual(['warning xx', 'xxxxxxxxxx', 'xxxxxxxxxx'])
    expect(rows[0]).toBe(`${red('warning')} xx`)
    expect(wrap('short', 10)).toEqual(['short'])

    const { now, tick } = clock()
    const { output, stdout, stderr } = make({ tty: true, columns: 40, now })
    output.emit(progress(vm, '0', 1 * MiB, 64 * MiB))
    tick(200)
    output.emit({ kind: 'info', message: `a long line ${'y'.repeat(60)}` })
    output.emit({ kind: 'warning', code: 'W', message: 'careful' })
    output.close()
    expect(stripVTControlCharacters(stdout.text)).toContain(`a long line ${'y'.repeat(28)}\n${'y'.repeat(32)}\n`)
    // stderr stays stderr: the live lines step aside for it
    expect(stripVTControlCharacters(stderr.text)).toBe('warning careful [W]\n')
  })

  it('says why a delta of an unwritten disk is a few KiB', () => {
    const { now, tick } = clock()
    const { output, stdout } = make({ tty: true, now })
    output.emit(progress(vm, '1', 3072, 3072, 'delta'))
    tick(200)
    output.emit({ kind: 'info', message: 'later' })
    output.close()
    expect(stripVTControlCharacters(stdout.text)).toMatch(
      /web disk 1 delta +█+ +3 KiB of 3 KiB +done, no block changed \(only the VHD header and block table\)/,
    )
  })
})

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z /

describe('the plain renderer (cron, a pipe)', () => {
  it('prefixes every line of a run with an ISO timestamp, the closing line and the summary included', () => {
    const { now, tick } = clock()
    const { output, stdout, stderr } = make({ now })
    pass(e => output.emit(e), tick)
    output.emit({
      kind: 'seed-exported',
      dir: '/seed',
      manifest: '/seed/manifest.json',
      snapshot: { uuid: 'u', name: 's' },
      bytes: 42 * MiB,
    })
    const lines = [...stdout.lines, ...stderr.lines]
    expect(lines.length).toBeGreaterThan(10)
    for (const line of lines) expect(line).toMatch(ISO)
    expect(stdout.lines).toContainEqual(expect.stringMatching(/Z 1 of 2 VMs replicated, 1 failed$/))
    expect(stdout.lines).toContainEqual(expect.stringMatching(/Z next: carry the folder/))
    expect(stdout.lines).toContainEqual(expect.stringMatching(/Z web +full +1 +64 MiB +4s +16 MiB\/s +ok$/))
  })

  it('is ASCII only: ok and FAILED instead of symbols', () => {
    const { now, tick } = clock()
    const { output, stdout, stderr } = make({ now })
    pass(e => output.emit(e), tick)
    output.emit({ kind: 'pool-check', pool: 'p', url: 'u', ok: true })
    output.close()
    const text = stdout.text + stderr.text
    expect(text).toMatch(/^[\x20-\x7e\n]*$/)
    expect(stdout.text).toMatch(/Z ok web: full, 64 MiB sent in 4s\n/)
    expect(stderr.text).toMatch(/Z FAILED db: no space \[SR_BACKEND_FAILURE_44\]\n/)
    expect(stdout.text).toMatch(/^ok pool p: logged in to u$/m)
  })

  it('prints a transfer of 100 steps as 11 lines (its start and every 10 %), and a slow one every 30 s', () => {
    const fast = clock()
    const steps = make({ now: fast.now })
    for (let step = 1; step <= 100; step++) {
      fast.tick(1_000)
      steps.output.emit(progress(vm, '0', step * MiB, 100 * MiB))
    }
    expect(steps.stdout.lines.map(line => line.replace(ISO, ''))).toEqual([
      'web: disk 0 full, 1 MiB of 100 MiB (1 %)',
      ...Array.from({ length: 10 }, (_, i) => `web: disk 0 full, ${(i + 1) * 10} MiB of 100 MiB (${(i + 1) * 10} %)`),
    ])
    const slow = clock()
    const crawl = make({ now: slow.now })
    for (let step = 1; step <= 100; step++) {
      slow.tick(31_000)
      crawl.output.emit(progress(vm, '0', step * 1024, 100 * MiB))
    }
    expect(crawl.stdout.lines).toHaveLength(100)
  })

  it('keeps per-disk throttling apart: two disks in flight each get their lines', () => {
    const { now, tick } = clock()
    const { output, stdout } = make({ now })
    for (let step = 1; step <= 10; step++) {
      tick(1_000)
      output.emit(progress(vm, '0', step * 10 * MiB, 100 * MiB))
      output.emit(progress(vm, '1', step * MiB, 10 * MiB))
    }
    expect(stdout.lines.filter(line => line.includes('disk 0'))).toHaveLength(10)
    expect(stdout.lines.filter(line => line.includes('disk 1'))).toHaveLength(10)
  })

  it('--quiet keeps the per-VM results, failures and the closing line; no progress, no table', () => {
    const { now, tick } = clock()
    const { output, stdout, stderr } = make({ now, quiet: true })
    pass(e => output.emit(e), tick)
    output.emit({ kind: 'warning', code: 'W', message: 'careful' })
    expect(stdout.lines.map(line => line.replace(ISO, ''))).toEqual([
      'ok web: full, 64 MiB sent in 4s',
      '1 of 2 VMs replicated, 1 failed',
    ])
    expect(stderr.lines.map(line => line.replace(ISO, ''))).toEqual(['FAILED db: no space [SR_BACKEND_FAILURE_44]'])
  })
})
