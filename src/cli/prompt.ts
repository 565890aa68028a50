import { AbortedError } from '../errors.js'

/** A terminal to read from: `process.stdin` when it is a TTY. */
export type PromptInput = NodeJS.ReadableStream & {
  readonly isTTY?: boolean
  isRaw?: boolean
  setRawMode?(mode: boolean): unknown
}

/**
 * Asks a question on `output` and reads one line from the terminal without echoing it (a
 * password). Raw mode is needed to stop the echo; in raw mode Ctrl-C arrives as a character,
 * not as SIGINT, so it is turned into an abort here.
 */
export function promptHidden(question: string, input: PromptInput, output: NodeJS.WritableStream): Promise<string> {
  output.write(question)
  return new Promise((resolve, reject) => {
    let answer = ''
    const wasRaw = input.isRaw === true
    input.setRawMode?.(true)
    input.setEncoding('utf8')
    input.resume()
    const finish = (): void => {
      input.off('data', onData)
      input.setRawMode?.(wasRaw)
      input.pause()
      output.write('\n')
    }
    const onData = (chunk: string | Buffer): void => {
      for (const character of chunk.toString()) {
        if (character === '\r' || character === '\n' || character === '\u0004') {
          finish()
          resolve(answer)
          return
        }
        if (character === '\u0003') {
          finish()
          reject(new AbortedError('password prompt interrupted'))
          return
        }
        if (character === '\u007f' || character === '\b') answer = answer.slice(0, -1)
        else answer += character
      }
    }
    input.on('data', onData)
  })
}
