'use strict'
// Shim of @vates/fuse-vhd: only file-level restore from a remote mounts a VHD; replication never does.
exports.mount = async function mount() {
  throw new Error('@vates/fuse-vhd is not available in this test installation (file-level restore only)')
}
