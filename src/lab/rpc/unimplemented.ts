/**
 * Every message of the datamodel that the lab does not carry out still exists, as it does on a
 * real host: it is dispatched like any other (parameter count, session, Async form, argument
 * unmarshalling) and then answers `NOT_IMPLEMENTED [<message>]`, the error XAPI itself gives for
 * a message it has but cannot perform (xapi_vm.ml's send_sysrq, query_services, …), or
 * `MESSAGE_REMOVED` for a message whose lifecycle ends in Removed. A client therefore never gets
 * MESSAGE_METHOD_UNKNOWN for a name XAPI knows, and never a made-up success.
 */
import { xapiFault } from '../fault.js'
import { DATAMODEL } from './datamodel.js'
import type { MethodRegistry } from './registry.js'

/** Registers the datamodel messages the registry lacks; call it after every real message is added. */
export function addUnimplementedMethods(registry: MethodRegistry): void {
  for (const [cls, spec] of Object.entries(DATAMODEL)) {
    for (const message of spec.messages) {
      const name = `${cls}.${message.name}`
      if (registry.has(name)) continue
      let defaulted = 0
      for (let i = message.params.length - 1; i >= 0 && message.params[i]!.optional === true; i--) defaulted++
      const removed = message.lifecycle === 'removed'
      registry.add({
        name,
        params: message.params.map(p => p.type),
        defaulted,
        session: message.session,
        async: message.async,
        ...(removed ? { removed: true } : { notImplemented: true }),
        handler: () => {
          throw xapiFault('NOT_IMPLEMENTED', message.name)
        },
      })
    }
  }
}
