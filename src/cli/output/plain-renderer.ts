import { Chalk, type ChalkInstance } from 'chalk'
import { toAscii } from './ascii.js'
import type { OutputEvent } from './events.js'
import type { FormatContext } from './formatter.js'
import { classOf, formatterFor } from './formatters.js'
import { isDiagnostic, isUnder, writeLines } from './render-lines.js'
import type { OutputStream, Renderer } from './renderer.js'

/** A live line is printed again after this long without a milestone, so a slow transfer still shows it moves. */
export const PLAIN_PROGRESS_EVERY_MS = 30_000

/**
 * Not a TTY (cron, systemd, a pipe): one line per event, each prefixed with an ISO timestamp so a
 * log reads as a timeline — except the data a command was asked for (`result`: a listing, a
 * job), printed bare so scripts can parse it. ASCII only (`ok`, `FAILED`, `...`); progress is
 * thinned to its milestones (every 10 % of a transfer) or one line per 30 s of a live line.
 */
export class PlainRenderer implements Renderer {
  private readonly style: ChalkInstance
  private readonly context: FormatContext
  /** per live line: its last printed milestone and when it was printed */
  private readonly printed = new Map<string, { milestone: number; at: number }>()

  constructor(
    private readonly stdout: OutputStream,
    private readonly stderr: OutputStream,
    private readonly now: () => Date,
    level: 0 | 1 | 2 | 3 = 0,
    options: { quiet?: boolean } = {},
  ) {
    this.style = new Chalk({ level })
    this.context = { medium: 'plain', quiet: options.quiet === true }
  }

  render(event: OutputEvent): void {
    const formatter = formatterFor(event)
    const cls = classOf(event)
    const time = this.now()
    const live = formatter.live
    if (formatter.closesProgress === true) this.printed.clear()
    if (live !== undefined) {
      const key = live.key(event)
      if (live.ends === true) {
        for (const other of [...this.printed.keys()]) if (isUnder(other, key)) this.printed.delete(other)
      } else if (live.milestone !== undefined && !this.due(key, live.milestone(event), time.getTime())) {
        return
      }
    }
    const lines = formatter.format(event, this.style, this.context).map(toAscii)
    if (cls === 'result') {
      writeLines(this.stdout, lines)
      return
    }
    writeLines(isDiagnostic(cls) ? this.stderr : this.stdout, lines, `${time.toISOString()} `)
  }

  close(): void {
    this.printed.clear()
  }

  /** The first update of a line, a new milestone, or 30 s of silence is printed; the rest is not. */
  private due(key: string, milestone: number, at: number): boolean {
    const last = this.printed.get(key)
    const due = last === undefined || milestone !== last.milestone || at - last.at >= PLAIN_PROGRESS_EVERY_MS
    if (due) this.printed.set(key, { milestone, at })
    return due
  }
}
