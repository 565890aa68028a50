/** The lab's whole API: one registry with every message, built once and shared by all pools. */
import { addCoreMethods } from './core-methods.js'
import { addDeviceMethods } from './device-methods.js'
import { addGenericMethods } from './generic.js'
import { addMessageMethods } from './message-methods.js'
import { addNbdMethods } from './nbd-methods.js'
import { addNetworkMethods } from './network-methods.js'
import { addObjectSettings } from './object-settings.js'
import { MethodRegistry } from './registry.js'
import { addUnimplementedMethods } from './unimplemented.js'
import { addVdiMethods } from './vdi-methods.js'
import { addVmMethods } from './vm-methods.js'
import { addVmOperations } from './vm-operations.js'
import { addVmSettings } from './vm-settings.js'

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
  addVmSettings(registry)
  addVmOperations(registry)
  addDeviceMethods(registry)
  addNbdMethods(registry)
  addObjectSettings(registry)
  addMessageMethods(registry)
  addNetworkMethods(registry)
  // Last: whatever the datamodel has and the lab does not carry out answers NOT_IMPLEMENTED.
  addUnimplementedMethods(registry)
  return registry
}
