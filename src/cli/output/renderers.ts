import { Chalk, type ChalkInstance } from 'chalk'
import ora, { type Ora } from 'ora'
import type { OutputEvent } from './events.js'
import type { EventClass } from './formatter.js'
import { classOf, formatterFor } from './formatters.js'

/** A writable terminal or pipe; `isTTY` is what a `tty.WriteStream` adds. */
export type OutputStream = NodeJS.WritableStream & { readonly isTTY?: boolean; readonly columns?: number }

export interface Renderer {
  render(event: OutputEvent): void
  close(): void
}

function writeLines(stream: OutputStream, lines: readonly string[], prefix = ''): void {
  for (const line of lines) stream.write(`${prefix}${line}\n`)
}

function isDiagnostic(cls: EventClass): boolean {
  return cls === 'warning' || cls === 'error'
}

/** `--json`: one JSON object per line on stdout, errors included, each stamped with `time`. */
export class JsonRenderer implements Renderer {
  constructor(
    private readonly stdout: OutputStream,
    private readonly now: () => Date,
  ) {}

  render(event: OutputEvent): void {
    this.stdout.write(`${JSON.stringify({ ...event, time: this.now().toISOString() })}\n`)
  }

  close(): void {}
}

/**
 * Not a TTY (cron, systemd, a pipe): plain lines, progress and diagnostics prefixed with an ISO
 * timestamp so a log reads as a timeline; results are printed bare so scripts can parse them.
 */
export class PlainRenderer implements Renderer {
  private readonly style: ChalkInstance
  private readonly milestones = new Map<string, number>()

  constructor(
    private readonly stdout: OutputStream,
    private readonly stderr: OutputStream,
    private readonly now: () => Date,
    level: 0 | 1 | 2 | 3 = 0,
  ) {
    this.style = new Chalk({ level })
  }

  render(event: OutputEvent): void {
    const formatter = formatterFor(event)
    const live = formatter.live
    if (live !== undefined) {
      const key = live.key(event)
      if (live.ends === true) {
        this.milestones.delete(key)
      } else if (live.milestone !== undefined) {
        const milestone = live.milestone(event)
        if (this.milestones.get(key) === milestone) return
        this.milestones.set(key, milestone)
      }
    }
    const lines = formatter.format(event, this.style)
    if (classOf(event) === 'result') {
      writeLines(this.stdout, lines)
      return
    }
    writeLines(isDiagnostic(classOf(event)) ? this.stderr : this.stdout, lines, `${this.now().toISOString()} `)
  }

  close(): void {
    this.milestones.clear()
  }
}

/**
 * A terminal: colours, and one ora spinner showing every live progress line (one per VM in
 * flight); other events are printed above it.
 */
export class TtyRenderer implements Renderer {
  private readonly style: ChalkInstance
  private readonly live = new Map<string, string>()
  private readonly spinner: Ora

  constructor(
    private readonly stdout: OutputStream,
    private readonly stderr: OutputStream,
    level: 0 | 1 | 2 | 3,
  ) {
    this.style = new Chalk({ level })
    // discardStdin would put stdin in raw mode and swallow Ctrl+C as a signal
    this.spinner = ora({
      stream: stdout,
      discardStdin: false,
      isEnabled: stdout.isTTY === true,
      color: level === 0 ? false : 'cyan',
    })
  }

  render(event: OutputEvent): void {
    const formatter = formatterFor(event)
    const lines = formatter.format(event, this.style)
    const live = formatter.live
    if (live !== undefined && live.ends !== true && classOf(event) === 'progress') {
      this.live.set(live.key(event), lines.join(' '))
      this.spinner.text = [...this.live.values()].join('\n')
      if (!this.spinner.isSpinning) this.spinner.start()
      return
    }
    if (live !== undefined) this.live.delete(live.key(event))
    const spinning = this.spinner.isSpinning
    if (spinning) this.spinner.clear()
    writeLines(isDiagnostic(classOf(event)) ? this.stderr : this.stdout, lines)
    if (this.live.size === 0) {
      if (spinning) this.spinner.stop()
    } else {
      this.spinner.text = [...this.live.values()].join('\n')
      if (spinning) this.spinner.render()
      else this.spinner.start()
    }
  }

  close(): void {
    if (this.spinner.isSpinning) this.spinner.stop()
    this.live.clear()
  }
}
