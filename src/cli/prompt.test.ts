import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { AbortedError } from '../errors.js'
import { CaptureStream } from '../../test/helpers/capture-stream.js'
import { promptHidden } from './prompt.js'

function terminal() {
  const input = Object.assign(new PassThrough(), {
    isTTY: true,
    isRaw: false,
    modes: [] as boolean[],
    setRawMode(mode: boolean) {
      this.modes.push(mode)
      this.isRaw = mode
      return this
    },
  })
  return { input, output: new CaptureStream() }
}

describe('promptHidden', () => {
  it('reads a line in raw mode without echoing it, handling backspace, and restores the mode', async () => {
    const { input, output } = terminal()
    const answer = promptHidden('Password: ', input, output)
    input.write('se\u007fcret\r')
    expect(await answer).toBe('scret')
    expect(output.text).toBe('Password: \n')
    expect(input.modes).toEqual([true, false])
  })

  it('turns Ctrl-C into an abort', async () => {
    const { input, output } = terminal()
    const answer = promptHidden('Password: ', input, output)
    input.write('ab\u0003')
    await expect(answer).rejects.toBeInstanceOf(AbortedError)
    expect(input.isRaw).toBe(false)
  })
})
