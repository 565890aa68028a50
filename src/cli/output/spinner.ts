import type { OutputStream } from './renderer.js'

/**
 * An ora spinner on `stream` until the returned function is called. ora is imported only when a
 * spinner is asked for, so commands that never wait (`--help`, `job list`) do not pay for it; a
 * wait shorter than that import shows nothing, which is what a quick login deserves.
 */
export function startSpinner(text: string, stream: OutputStream, color: boolean): () => void {
  let stop: (() => void) | undefined
  let ended = false
  void import('ora')
    .then(({ default: ora }) => {
      if (ended) return
      // discardStdin off: a password prompt may follow on the same terminal. isEnabled: the
      // output already decided this is a usable terminal (ora would also go quiet under CI=…).
      const spinner = ora({ text, stream, color: color ? 'cyan' : false, discardStdin: false, isEnabled: true })
      spinner.start()
      stop = () => spinner.stop()
    })
    .catch(() => undefined)
  return () => {
    ended = true
    stop?.()
    stop = undefined
  }
}
