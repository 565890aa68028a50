'use strict'
// Shim of the runtime part of @vates/types that @xen-orchestra/backups uses: XAPI's VM power states.
exports.VM_POWER_STATE = Object.freeze({
  HALTED: 'Halted',
  PAUSED: 'Paused',
  RUNNING: 'Running',
  SUSPENDED: 'Suspended',
})
