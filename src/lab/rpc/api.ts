/** The lab's whole API: one registry with every message, built once and shared by all pools. */
import { addCoreMethods } from './core-methods.js'
import { addDeviceMethods } from './device-methods.js'
import { addGenericMethods } from './generic.js'
import { addNbdMethods } from './nbd-methods.js'
import { MethodRegistry } from './registry.js'
import { addVdiMethods } from './vdi-methods.js'
import { addVmMethods } from './vm-methods.js'

export function buildApi(): MethodRegistry {
  const registry = new MethodRegistry()
  addGenericMethods(registry)
  // Custom messages are added after the generic ones so that they win on a name clash.
  addCoreMethods(registry, () =>
    registry
      .names()
      .filter(name => !name.startsWith('system.'))
      .sort(),
  )
  addVdiMethods(registry)
  addVmMethods(registry)
  addDeviceMethods(registry)
  addNbdMethods(registry)
  return registry
}
