import type { FormattersOf } from './formatter.js'
import type { CompletionEvent } from './operator-events.js'

/** `xen-cr completion bash|zsh`: the script line for line (a result, so never timestamped). */
export const completionFormatters: FormattersOf<CompletionEvent> = {
  'completion-script': { class: 'result', format: event => event.script.replace(/\n$/, '').split('\n') },
}
