'use strict'
// Shim of @vates/diff: vhd-lib's stream validator (`validateVhdStreams`, remote backups only)
// requires it at load; replication never calls it.
module.exports = function diff() {
  throw new Error('@vates/diff is not available in this test installation (VHD stream validation only)')
}
