import { colorLevel, type Env } from './color.js'
import type { OutputEvent } from './events.js'
import { classOf } from './formatters.js'
import { startSpinner } from './spinner.js'
import { JsonRenderer, PlainRenderer, TtyRenderer, type OutputStream, type Renderer } from './renderers.js'

export interface OutputOptions {
  readonly stdout: OutputStream
  readonly stderr: OutputStream
  readonly env: Env
  readonly json: boolean
  readonly quiet: boolean
  readonly verbose: boolean
  /** false with --no-color */
  readonly color: boolean
  readonly now?: () => Date
}

/** The only way commands show anything: typed events, rendered for a TTY, a log, or as NDJSON. */
export interface Output {
  emit(event: OutputEvent): void
  /** the one path for recoverable oddities (STYLE 7) */
  warn(code: string, message: string): void
  close(): void
  /**
   * Something under way that has no bytes to count (logging in to a pool): a spinner on a
   * terminal, nothing in a log or in `--json`. Returns the function that ends it.
   */
  activity(text: string): () => void
  readonly mode: 'tty' | 'plain' | 'json'
}

export function createOutput(options: OutputOptions): Output {
  const now = options.now ?? (() => new Date())
  const isTTY = options.stdout.isTTY === true
  // A pty that reports 0 columns (`script` without a size, some container consoles) cannot hold
  // live lines that are redrawn in place: treat it as a log instead.
  const columns = options.stdout.columns
  const usableTerminal = isTTY && !(typeof columns === 'number' && columns <= 0)
  const mode = options.json ? 'json' : usableTerminal ? 'tty' : 'plain'
  const level = colorLevel({ color: options.color, env: options.env, isTTY })
  const { quiet } = options
  const renderer: Renderer =
    mode === 'json'
      ? new JsonRenderer(options.stdout, options.stderr, now)
      : mode === 'tty'
        ? new TtyRenderer(options.stdout, options.stderr, level, { quiet, now })
        : new PlainRenderer(options.stdout, options.stderr, now, level, { quiet })

  const emit = (event: OutputEvent): void => {
    const cls = classOf(event)
    if (cls === 'debug' && !options.verbose) return
    // --quiet: what a cron mail should hold — each VM's result, the closing line, and failures
    if (quiet && (cls === 'progress' || cls === 'info' || cls === 'warning' || cls === 'debug')) return
    renderer.render(event)
  }
  return {
    mode,
    emit,
    activity: text => (mode === 'tty' && !quiet ? startSpinner(text, options.stderr, level > 0) : () => {}),
    warn: (code, message) => emit({ kind: 'warning', code, message }),
    close: () => renderer.close(),
  }
}
