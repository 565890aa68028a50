'use strict'
// Shim of @vates/stream-reader: vhd-lib's stream validator (`validateVhdStreams`, remote backups
// only) requires it at load; replication never constructs one.
module.exports = class StreamReader {
  constructor() {
    throw new Error('@vates/stream-reader is not available in this test installation (VHD stream validation only)')
  }
}
