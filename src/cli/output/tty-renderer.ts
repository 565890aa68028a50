import { Chalk, type ChalkInstance } from 'chalk'
import type { OutputEvent } from './events.js'
import type { FormatContext } from './formatter.js'
import { classOf, formatterFor } from './formatters.js'
import { isDiagnostic, writeLines } from './render-lines.js'
import type { OutputStream, Renderer } from './renderer.js'
import { TransferBoard } from './transfer-board.js'

/**
 * A terminal: colours, and live lines kept in place under the rest of the output — a bar per
 * disk being sent with its rate and ETA, a spinner per step in words, a total for the run.
 * Whatever else is printed goes above them; a pass ends with its summary table.
 */
export class TtyRenderer implements Renderer {
  private readonly style: ChalkInstance
  private readonly context: FormatContext
  private readonly board: TransferBoard

  constructor(
    private readonly stdout: OutputStream,
    private readonly stderr: OutputStream,
    level: 0 | 1 | 2 | 3,
    options: { quiet?: boolean; now?: () => Date } = {},
  ) {
    this.style = new Chalk({ level })
    this.context = { medium: 'tty', quiet: options.quiet === true }
    const now = options.now ?? (() => new Date())
    this.board = new TransferBoard(stdout, this.style, () => now().getTime())
  }

  render(event: OutputEvent): void {
    const formatter = formatterFor(event)
    const cls = classOf(event)
    const lines = formatter.format(event, this.style, this.context)
    const live = formatter.live
    if (live !== undefined && live.ends !== true && cls === 'progress') {
      const key = live.key(event)
      const transfer = live.transfer?.(event)
      if (transfer === undefined) this.board.text(key, lines.join(' '))
      else this.board.transfer(key, transfer)
      return
    }
    if (formatter.closesProgress === true) this.board.stop()
    else if (live?.ends === true) this.board.end(live.key(event))
    const stream = isDiagnostic(cls) ? this.stderr : this.stdout
    // Writing to the terminal under the live lines would tear them: while they are drawn, stdout
    // goes above them and a terminal's stderr is written with them off the screen. A redirected
    // stderr is not that terminal.
    if (!this.board.active || (stream !== this.stdout && stream.isTTY !== true)) writeLines(stream, lines)
    else if (stream === this.stdout) this.board.log(lines)
    else this.board.aside(() => writeLines(stream, lines))
  }

  close(): void {
    this.board.stop()
  }
}
