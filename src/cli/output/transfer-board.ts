import { createRequire } from 'node:module'
import { stripVTControlCharacters } from 'node:util'
import type { ChalkInstance } from 'chalk'
import type cliProgress from 'cli-progress'
import type { Options, Params, SingleBar } from 'cli-progress'
import { formatBytes, formatRate } from '../../jobs/rate.js'
import type { TransferState } from './formatter.js'
import type { OutputStream } from './renderer.js'

// Required when the board first draws, not when the CLI starts: only a transfer on a terminal
// needs it (issue 11). cli-progress is CommonJS, so a synchronous require keeps the board synchronous.
const require = createRequire(import.meta.url)

/** One live line: a transfer drawn as a bar, or a step in words with a spinner. */
interface Line {
  readonly key: string
  bar: SingleBar
  /** the text of a step, or undefined for a transfer */
  text: string | undefined
  transfer: TransferState | undefined
  /** when and at how many bytes the transfer was first seen, for its rate */
  readonly firstAt: number
  firstBytes: number | undefined
}

/** What a finished transfer leaves to the run's total line. */
interface Settled {
  bytes: number
  total: number
  count: number
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']
/** Rates and ETAs over less than this are noise. */
const MIN_RATE_WINDOW_MS = 500
/** Redraws per second: a bar that moves smoothly, a terminal that is not flooded. */
const FPS = 10

/**
 * The live part of a terminal: one line per disk being sent (a bar with bytes sent of the exact
 * bytes to send, rate and ETA), a line per step in words, and a total line for the run under
 * them. cli-progress keeps the lines in place and prints other output above them.
 */
export class TransferBoard {
  private multibar: cliProgress.MultiBar | undefined
  private readonly lines = new Map<string, Line>()
  private totalBar: SingleBar | undefined
  private readonly settled: Settled = { bytes: 0, total: 0, count: 0 }
  private runStart: number | undefined
  private lastDraw = 0

  constructor(
    private readonly stream: OutputStream,
    private readonly style: ChalkInstance,
    private readonly now: () => number,
  ) {}

  /** True while lines are drawn: output must then go through {@link log}. */
  get active(): boolean {
    return this.multibar !== undefined
  }

  /** A step in words (`web-01: full, snapshot…`). */
  text(key: string, text: string): void {
    const line = this.lines.get(key)
    if (line === undefined) this.add(key, { text })
    else line.text = text
    this.draw(line === undefined)
  }

  /** A transfer's progress; the first one of a key adds its bar. */
  transfer(key: string, state: TransferState): void {
    const line = this.lines.get(key)
    const isNew = line === undefined || line.transfer === undefined
    if (isNew) {
      // a VM's words give way to its disks' bars
      this.removeWhere(other => other.transfer === undefined && key.startsWith(`${other.key}/`))
      if (line === undefined) this.add(key, { transfer: state })
      this.ensureTotal()
    }
    if (line !== undefined) {
      line.text = undefined
      line.transfer = state
      line.firstBytes ??= state.bytes
    }
    this.draw(isNew)
  }

  /** Ends `key` and every line under it (`key/…`); their bytes stay in the total. */
  end(key: string): void {
    this.removeWhere(line => line.key === key || line.key.startsWith(`${key}/`))
    if (this.lines.size === 0 && this.totalBar === undefined) this.stop()
    else this.draw(true)
  }

  /** Prints `lines` above the live ones. */
  log(lines: readonly string[]): void {
    // the terminal does not wrap while the live lines are drawn: long lines are wrapped here
    for (const line of lines) for (const row of wrap(line, this.width)) this.multibar?.log(`${row}\n`)
    this.draw(true)
  }

  /**
   * Runs `write` (output to another stream of the same terminal, stderr) with the live lines
   * taken off the screen, then draws them again under what it wrote.
   */
  aside(write: () => void): void {
    if (this.multibar === undefined) {
      write()
      return
    }
    this.halt()
    write()
    const multibar = this.start()
    for (const line of this.lines.values()) line.bar = multibar.create(1, 0, { render: () => this.render(line.key) })
    if (this.totalBar !== undefined) this.totalBar = multibar.create(1, 0, { render: () => this.renderTotal() })
    this.draw(true)
  }

  /** Clears every live line and forgets the run (its summary is printed after). */
  stop(): void {
    this.halt()
    this.lines.clear()
    this.totalBar = undefined
    this.settled.bytes = this.settled.total = this.settled.count = 0
    this.runStart = undefined
  }

  /** A new line, with its state in place before anything can draw it. */
  private add(key: string, state: { text?: string; transfer?: TransferState }): void {
    const multibar = this.start()
    const t = this.now()
    this.runStart ??= t
    this.lines.set(key, {
      key,
      // the payload renders the line's state as it is at each redraw
      bar: multibar.create(1, 0, { render: () => this.render(key) }),
      text: state.text,
      transfer: state.transfer,
      firstAt: t,
      firstBytes: state.transfer?.bytes,
    })
    // the total line stays last
    if (this.totalBar !== undefined) {
      multibar.remove(this.totalBar)
      this.totalBar = multibar.create(1, 0, { render: () => this.renderTotal() })
    }
  }

  private ensureTotal(): void {
    if (this.totalBar === undefined) this.totalBar = this.start().create(1, 0, { render: () => this.renderTotal() })
  }

  private start(): cliProgress.MultiBar {
    if (this.multibar !== undefined) return this.multibar
    const options: Options = {
      stream: this.stream,
      format: (_options: Options, _params: Params, payload: { render: () => string }) => payload.render(),
      fps: FPS,
      hideCursor: true,
      // the terminal's own wrapping is off while lines are live (a wrapped live line would
      // break the redraw); `fit` keeps them to a row and `log` wraps what goes above
      linewrap: false,
      clearOnComplete: true,
      // lines printed above move the bars down: each frame redraws them all
      forceRedraw: true,
      // SIGINT aborts the run, whose cleanup stops the board
      gracefulExit: false,
    }
    const { MultiBar } = require('cli-progress') as typeof cliProgress
    this.multibar = new MultiBar(options)
    process.once('exit', this.restoreTerminal)
    return this.multibar
  }

  private halt(): void {
    this.multibar?.stop()
    this.multibar = undefined
    process.off('exit', this.restoreTerminal)
  }

  /**
   * A second Ctrl-C exits at once, without the cleanup that stops the board: the cursor and the
   * terminal's wrapping, turned off while lines are live, are turned back on as the process ends.
   */
  private readonly restoreTerminal = (): void => {
    this.stream.write('\u001b[?25h\u001b[?7h')
  }

  private removeWhere(test: (line: Line) => boolean): void {
    for (const line of [...this.lines.values()]) {
      if (!test(line)) continue
      if (line.transfer !== undefined) {
        this.settled.bytes += line.transfer.bytes
        this.settled.total += line.transfer.total ?? line.transfer.bytes
        this.settled.count++
      }
      this.multibar?.remove(line.bar)
      this.lines.delete(line.key)
    }
  }

  /** Redraws now when asked to (new or removed lines, output above) or when a frame is due. */
  private draw(force: boolean): void {
    const t = this.now()
    if (this.multibar === undefined || (!force && t - this.lastDraw < 1000 / FPS)) return
    this.lastDraw = t
    this.multibar.update()
  }

  private get width(): number {
    const columns = this.stream.columns
    return typeof columns === 'number' && columns > 0 ? columns : 80
  }

  private labelWidth(): number {
    let width = 5
    for (const line of this.lines.values())
      if (line.transfer !== undefined) width = Math.max(width, line.transfer.label.length)
    return Math.min(width, Math.floor(this.width / 3))
  }

  private render(key: string): string {
    const line = this.lines.get(key)
    if (line === undefined) return ''
    const t = this.now()
    if (line.transfer === undefined) {
      const frame = SPINNER[Math.floor(t / 80) % SPINNER.length] ?? ''
      return this.fit(`${this.style.cyan(frame)} ${line.text ?? ''}`)
    }
    const { label, bytes, total, note } = line.transfer
    const done = total !== undefined && bytes >= total
    const elapsed = t - line.firstAt
    const sent = bytes - (line.firstBytes ?? 0)
    const rate = elapsed >= MIN_RATE_WINDOW_MS && sent > 0 ? (sent * 1000) / elapsed : undefined
    const after = [`${formatBytes(bytes)} of ${total === undefined ? '?' : formatBytes(total)}`]
    if (done) after.push(this.style.green(note === undefined ? 'done' : `done, ${note}`))
    else if (rate !== undefined) {
      after.push(formatRate(rate))
      if (total !== undefined) after.push(`ETA ${formatEta((total - bytes) / rate)}`)
    }
    return this.layout(
      label.padEnd(this.labelWidth()),
      total === undefined ? 0 : bytes / Math.max(1, total),
      done,
      after,
    )
  }

  private renderTotal(): string {
    let bytes = this.settled.bytes
    let total = this.settled.total
    let unknown = false
    let count = this.settled.count
    let finished = this.settled.count
    for (const line of this.lines.values()) {
      if (line.transfer === undefined) continue
      count++
      bytes += line.transfer.bytes
      if (line.transfer.total === undefined) unknown = true
      else {
        total += line.transfer.total
        if (line.transfer.bytes >= line.transfer.total) finished++
      }
    }
    const elapsed = this.now() - (this.runStart ?? this.now())
    const rate = elapsed >= MIN_RATE_WINDOW_MS && bytes > 0 ? (bytes * 1000) / elapsed : undefined
    // a disk's length is known once its transfer starts: `+` says more may come
    const after = [
      `${formatBytes(bytes)} of ${formatBytes(total)}${unknown ? '+' : ''}`,
      `disks ${finished}/${count} done`,
    ]
    if (rate !== undefined) after.push(formatRate(rate))
    if (rate !== undefined && !unknown && total > bytes) after.push(`ETA ${formatEta((total - bytes) / rate)}`)
    const fraction = unknown || total === 0 ? 0 : bytes / total
    return this.layout(this.style.bold('total'.padEnd(this.labelWidth())), fraction, !unknown && bytes >= total, after)
  }

  /** `label  bar  after…`, the bar as wide as the row allows (6 to 24 cells). */
  private layout(label: string, fraction: number, done: boolean, after: readonly string[]): string {
    const rest = stripVTControlCharacters([label, '', ...after].join('  '))
    const room = this.width - 1 - rest.length
    const size = Math.max(6, Math.min(24, room))
    const filled = Math.max(0, Math.min(size, Math.round(fraction * size)))
    const full = '█'.repeat(filled)
    const bar = (done ? this.style.green(full) : this.style.cyan(full)) + this.style.dim('░'.repeat(size - filled))
    return this.fit([label, bar, ...after].join('  '))
  }

  /** One terminal row at most (the last column left free): a longer line loses its colours and its end. */
  private fit(text: string): string {
    const width = this.width - 1
    const plain = stripVTControlCharacters(text)
    if (plain.length <= width) return text
    return `${plain.slice(0, Math.max(0, width - 1))}…`
  }
}

/**
 * `line` cut into rows of `width` columns, escape sequences (colours) carried along and not
 * counted. One column per code point: what xen-cr prints is not East Asian wide text.
 */
export function wrap(line: string, width: number): string[] {
  if (width <= 0 || stripVTControlCharacters(line).length <= width) return [line]
  const rows: string[] = []
  let row = ''
  let columns = 0
  for (let i = 0; i < line.length;) {
    if (line.charCodeAt(i) === 0x1b) {
      // CSI: ESC [ parameters, up to a final letter
      let end = i + 1
      if (line[end] === '[') {
        end++
        while (end < line.length && !/[A-Za-z]/.test(line[end] ?? '')) end++
      }
      row += line.slice(i, end + 1)
      i = end + 1
      continue
    }
    const char = String.fromCodePoint(line.codePointAt(i) ?? 0)
    if (columns === width) {
      rows.push(row)
      row = ''
      columns = 0
    }
    row += char
    columns++
    i += char.length
  }
  rows.push(row)
  return rows
}

/** `45s`, `3m05s`, `2h10m`. */
export function formatEta(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds))
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`
}
