/**
 * Child process of the data-path benchmarks: a lab of its own, so that its CPU time can be read
 * apart from the client's (`/proc/<pid>/stat`) and its event loop never shares a thread with
 * the client or the relay being measured. Reads `{dir, spec}` from XEN_CR_BENCH_LAB, prints one
 * JSON line `{pools, vms: {pool/vm: [vdi uuid…]}}` once every host listens, and stops the lab
 * when its stdin closes (so it never outlives the benchmark).
 */
const job = JSON.parse(process.env['XEN_CR_BENCH_LAB'] ?? '{}')
const { startLab } = await import(new URL('../../../dist/lab/start.js', import.meta.url).href)
const lab = await startLab({ dir: job.dir, spec: job.spec })
const vms = {}
for (const pool of job.spec.pools)
  for (const vm of pool.vms ?? [])
    vms[`${pool.name}/${vm.name}`] = lab.control.findVm(pool.name, vm.name).vdis.map(v => v.uuid)
process.stdout.write(`${JSON.stringify({ pools: lab.pools, vms })}\n`)
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
