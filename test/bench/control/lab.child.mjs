/**
 * Child process of the control-plane benchmarks: a lab of its own, so that its CPU time is read
 * apart from the client's (`/proc/<pid>/stat`) and its event loop never shares a thread with the
 * client. Reads `{dir, spec (a file), vms: [[pool, name]…]}` from XEN_CR_BENCH_LAB, prints one JSON line
 * `{pools, vms: {"pool/name": {uuid, vdis}}}` once every host listens, and stops the lab when its
 * stdin closes (so it never outlives the benchmark).
 */
const job = JSON.parse(process.env['XEN_CR_BENCH_LAB'] ?? '{}')
const { startLab } = await import(new URL('../../../dist/lab/start.js', import.meta.url).href)
const lab = await startLab({ dir: job.dir, spec: job.spec, loginDelayMs: 0 })
const vms = {}
for (const [pool, name] of job.vms ?? []) {
  const vm = lab.control.findVm(pool, name)
  vms[`${pool}/${name}`] = { uuid: vm.uuid, vdis: vm.vdis.map(v => v.uuid) }
}
process.stdout.write(`${JSON.stringify({ pools: lab.pools, configPath: lab.configPath, vms })}\n`)
let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await lab.stop()
  process.exit(0)
}
process.stdin.on('end', stop)
process.stdin.on('close', stop)
process.stdin.resume()
process.on('SIGTERM', stop)
