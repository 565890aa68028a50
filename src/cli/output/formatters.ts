import { checkFormatters } from './check-formatters.js'
import { cleanupFormatters } from './cleanup-formatters.js'
import { completionFormatters } from './completion-formatters.js'
import { configFormatters } from './config-formatters.js'
import type { DiagnosticEvent, OutputEvent } from './events.js'
import type { EventClass, Formatter, FormattersOf } from './formatter.js'
import { failbackFormatters } from './failback-formatters.js'
import { inventoryFormatters } from './inventory-formatters.js'
import { jobEditFormatters } from './job-edit-formatters.js'
import { jobFormatters } from './job-formatters.js'
import { passFormatters } from './pass-formatters.js'
import { recoveryFormatters } from './recovery-formatters.js'
import { replicaListFormatters } from './replica-list-formatters.js'
import { rpoCheckFormatters } from './rpo-check-formatters.js'
import { runFormatters } from './run-formatters.js'
import { seedFormatters } from './seed-formatters.js'

const diagnosticFormatters: FormattersOf<DiagnosticEvent> = {
  info: { class: 'info', format: event => [event.message] },
  debug: { class: 'debug', format: (event, style) => [style.dim(event.message)] },
  warning: {
    class: 'warning',
    format: (event, style) => [
      `${style.yellow('warning')} ${event.vm === undefined ? '' : `${event.vm.name}: `}${event.message} [${event.code}]`,
    ],
  },
  error: {
    class: 'error',
    format: (event, style) => [
      `${style.red('error')} ${event.message} [${event.code}]`,
      ...(event.stack === undefined ? [] : [style.dim(event.stack)]),
    ],
  },
}

/** One formatter per event kind; the type makes a missing kind a compile error. */
export const formatters: FormattersOf<OutputEvent> = {
  ...diagnosticFormatters,
  ...passFormatters,
  ...replicaListFormatters,
  ...configFormatters,
  ...runFormatters,
  ...jobFormatters,
  ...seedFormatters,
  ...recoveryFormatters,
  ...checkFormatters,
  ...failbackFormatters,
  ...rpoCheckFormatters,
  ...inventoryFormatters,
  ...completionFormatters,
  ...jobEditFormatters,
  ...cleanupFormatters,
}

/** The class of this event (most kinds have a fixed one). */
export function classOf<E extends OutputEvent>(event: E): EventClass {
  const cls = formatterFor(event).class
  return typeof cls === 'function' ? cls(event) : cls
}

/** Dispatches to the formatter of the event's kind (the cast is the one place TS cannot correlate the union). */
export function formatterFor<E extends OutputEvent>(event: E): Formatter<E> {
  return formatters[event.kind] as unknown as Formatter<E>
}
