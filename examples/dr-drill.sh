#!/usr/bin/env bash
# A disaster-recovery drill, end to end, on the lab: replicate, lose the source site, fail the job
# over, check the VMs run on the target, bring the source back, fail back as a delta, and resume
# replication as a delta. Every step is timed and its bytes counted; any surprise exits non-zero.
# The same commands, with your config and job, are the runbook in README "Disaster recovery".
#
# Usage: examples/dr-drill.sh        (XEN_CR overrides the command, default: this checkout's bin/xen-cr.js)
# Needs: node (>= 20) and a built checkout (npm run build). Leaves nothing behind.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
XEN_CR=${XEN_CR:-"node $HERE/../bin/xen-cr.js"}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/xen-cr-drill.XXXXXX")
LAB_PID=
BLOCK=$((2 * 1024 * 1024))

cleanup() {
  if [ -n "$LAB_PID" ] && kill -0 "$LAB_PID" 2>/dev/null; then
    kill -TERM "$LAB_PID" 2>/dev/null || true
    wait "$LAB_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "DRILL FAILED: $*" >&2
  exit 1
}

# js EXPR: evaluates EXPR with `d` = the JSON document on stdin (or `e` = the NDJSON events);
# prints a string as is, anything else as JSON.
js() {
  node -e '
    const text = require("fs").readFileSync(0, "utf8")
    let d
    try { d = JSON.parse(text) } catch { d = undefined }
    const e = text.split("\n").filter(Boolean).flatMap(l => { try { return [JSON.parse(l)] } catch { return [] } })
    const v = new Function("d", "e", `return (${process.argv[1]})`)(d, e)
    process.stdout.write(typeof v === "string" ? v : JSON.stringify(v))
  ' "$1"
}

# http METHOD URL [BODY]: the control API (no auth, loopback only); fails on an HTTP error.
http() {
  node --input-type=module -e '
    const [method, url, body] = process.argv.slice(1)
    const res = await fetch(url, { method, ...(body === undefined ? {} : { body, headers: { "content-type": "application/json" } }) })
    const text = await res.text()
    if (!res.ok) { console.error(`${method} ${url}: HTTP ${res.status} ${text}`); process.exit(1) }
    process.stdout.write(text)
  ' "$@"
}

# xapi POOL_URL USER PASSWORD METHOD ARGS_JSON: one XAPI call over JSON-RPC, as an operator's xe would do.
xapi() {
  node --input-type=module -e '
    const [url, user, password, method, args] = process.argv.slice(1)
    const call = async (method, params) => {
      const res = await fetch(`${url}/jsonrpc`, { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) })
      const reply = await res.json()
      if (reply.error) throw new Error(`${method}: ${JSON.stringify(reply.error)}`)
      return reply.result
    }
    const session = await call("session.login_with_password", [user, password, "1.0", "dr-drill"])
    try { process.stdout.write(JSON.stringify(await call(method, [session, ...JSON.parse(args)]))) }
    finally { await call("session.logout", [session]) }
  ' "$@"
}

now_ms() { node -e 'process.stdout.write(String(Date.now()))'; }

SUMMARY=()
# step NAME EXPECTED_EXIT -- COMMAND...: runs it, keeps its stdout in $WORK/out, times it.
step() {
  local name=$1 expected=$2
  shift 3
  local start status=0
  start=$(now_ms)
  "$@" >"$WORK/out" 2>"$WORK/err" || status=$?
  STEP_MS=$(($(now_ms) - start))
  if [ "$status" -ne "$expected" ]; then
    cat "$WORK/out" "$WORK/err" >&2
    fail "$name: exit $status, expected $expected"
  fi
}

record() { SUMMARY+=("$(printf '%-28s %8s ms %12s bytes' "$1" "$STEP_MS" "$2")"); }

# --- the lab ------------------------------------------------------------------------------------
$XEN_CR --json lab --dir "$WORK/lab" --login-delay 0 >"$WORK/lab.json" 2>"$WORK/lab.err" &
LAB_PID=$!
for _ in $(seq 1 300); do
  [ -s "$WORK/lab.json" ] && break
  kill -0 "$LAB_PID" 2>/dev/null || { cat "$WORK/lab.err" >&2; fail "xen-cr lab did not start"; }
  sleep 0.1
done
[ -s "$WORK/lab.json" ] || fail "xen-cr lab did not say where it listens within 30 s"
CONFIG=$(js 'd.config' <"$WORK/lab.json")
SOURCE_URL=$(js 'd.pools.find(p => p.name === "source").url' <"$WORK/lab.json")
TARGET_URL=$(js 'd.pools.find(p => p.name === "target").url' <"$WORK/lab.json")
TARGET_USER=$(js 'd.pools.find(p => p.name === "target").user' <"$WORK/lab.json")
TARGET_PASSWORD=$(js 'd.pools.find(p => p.name === "target").password' <"$WORK/lab.json")
XC="$XEN_CR --config $CONFIG --jobs-file $WORK/jobs.json"
echo "lab: source $SOURCE_URL, target $TARGET_URL"

# --- replicate ----------------------------------------------------------------------------------
step "inventory" 0 -- $XC --json vms source
WEB=$(js 'e[0].vms.find(v => v.name === "web-01").uuid' <"$WORK/out")
DB=$(js 'e[0].vms.find(v => v.name === "db-01").uuid' <"$WORK/out")
step "job create" 0 -- $XC job create --name drill --source source --target target --vm "$WEB" "$DB" --interval 1h --retention 2

# pass NAME MODE: one pass of the job; every VM must succeed in MODE; sets PASS_BYTES.
pass() {
  step "$1" 0 -- $XC --json run drill
  local modes
  modes=$(js 'e.filter(x => x.kind === "vm-done").map(x => x.result.status + ":" + x.result.mode).sort().join(" ")' <"$WORK/out")
  [ "$modes" = "success:$2 success:$2" ] || fail "$1: expected two VMs replicated as $2, got: $modes"
  PASS_BYTES=$(js 'e.filter(x => x.kind === "vm-done").reduce((n, x) => n + x.result.bytes, 0)' <"$WORK/out")
  record "$1 ($2)" "$PASS_BYTES"
  echo "$1: $2, $PASS_BYTES bytes in ${STEP_MS} ms"
}

pass "first pass" full
for vm in "$WEB" "$DB"; do
  http POST "$SOURCE_URL/lab/guest-data" "{\"pool\":\"source\",\"target\":\"$vm\",\"blocks\":[1],\"seed\":42}" >/dev/null
done
pass "second pass" delta
[ "$PASS_BYTES" -lt $((3 * BLOCK)) ] || fail "second pass sent $PASS_BYTES bytes for 2 changed blocks"

# --- lose the source site -----------------------------------------------------------------------
# A power cut: when the site comes back its VMs are halted. The control API of a target host is
# the one left to ask.
http POST "$TARGET_URL/lab/pools/source/down" '{"haltVms":true}' >/dev/null
step "source unreachable" 4 -- $XC run drill
echo "source pool down: run exits 4 (cannot reach the pool)"

step "failover" 0 -- $XC --json failover drill
js 'e.find(x => x.kind === "failover-done").results.map(r => `${r.status} ${r.vm.name} -> ${r.failoverVm?.name} (${r.failoverVm?.uuid})`).join("\n")' <"$WORK/out"
echo
[ "$(js 'e.find(x => x.kind === "failover-done").results.filter(r => r.status === "success" && r.started).length' <"$WORK/out")" = 2 ] ||
  fail "failover did not start both VMs"
record "failover" 0
echo "failover: 2 VMs running on the target in ${STEP_MS} ms"

step "target inventory" 0 -- $XC --json vms target
RUNNING=$(js 'e[0].vms.filter(v => v.name.endsWith(" (failover)") && v.powerState === "Running").map(v => v.name).sort().join(", ")' <"$WORK/out")
[ "$RUNNING" = "db-01 (failover), web-01 (failover)" ] || fail "expected both failover VMs running, got: $RUNNING"
echo "running on the target: $RUNNING"
WEB_FO=$(js 'e[0].vms.find(v => v.name === "web-01 (failover)").uuid' <"$WORK/out")
DB_FO=$(js 'e[0].vms.find(v => v.name === "db-01 (failover)").uuid' <"$WORK/out")

# Production runs on the target for a while: 3 blocks written there.
http POST "$TARGET_URL/lab/guest-data" "{\"pool\":\"target\",\"target\":\"$WEB_FO\",\"blocks\":[2,3],\"seed\":7}" >/dev/null
http POST "$TARGET_URL/lab/guest-data" "{\"pool\":\"target\",\"target\":\"$DB_FO\",\"blocks\":[0],\"seed\":8}" >/dev/null
CHANGED=3

# --- come back ----------------------------------------------------------------------------------
http POST "$TARGET_URL/lab/pools/source/up" '{}' >/dev/null
echo "source pool back"
# A planned failback: stop the failed-over VMs first, so nothing they write is left behind.
for vm in "$WEB_FO" "$DB_FO"; do
  ref=$(xapi "$TARGET_URL" "$TARGET_USER" "$TARGET_PASSWORD" VM.get_by_uuid "[\"$vm\"]" | js 'd')
  xapi "$TARGET_URL" "$TARGET_USER" "$TARGET_PASSWORD" VM.clean_shutdown "[\"$ref\"]" >/dev/null
done

step "failback" 0 -- $XC --json failback drill
FAILBACK=$WORK/failback.json
cp "$WORK/out" "$FAILBACK"
js 'e.find(x => x.kind === "failback-done").results.map(r => `${r.status} ${r.failedOver.name} -> ${r.vm?.name} (${r.vm?.uuid}) ${r.mode}, ${r.bytes} bytes, ${r.started ? "running" : "halted"}`).join("\n")' <"$FAILBACK"
echo
[ "$(js 'e.find(x => x.kind === "failback-done").results.filter(r => r.status === "success" && r.started).length' <"$FAILBACK")" = 2 ] ||
  fail "failback did not bring both VMs back running"
FAILBACK_BYTES=$(js 'e.find(x => x.kind === "failback-done").results.reduce((n, r) => n + r.bytes, 0)' <"$FAILBACK")
FAILBACK_DISKS=$(js 'e.find(x => x.kind === "failback-done").results.reduce((n, r) => n + r.disks.length, 0)' <"$FAILBACK")
# only the changed blocks (each with its 512-byte bitmap) and a little VHD framing per disk travel
MIN=$((CHANGED * (BLOCK + 512)))
[ "$FAILBACK_BYTES" -ge "$MIN" ] && [ "$FAILBACK_BYTES" -lt $((MIN + FAILBACK_DISKS * 65536)) ] ||
  fail "failback sent $FAILBACK_BYTES bytes for $CHANGED changed blocks on $FAILBACK_DISKS disks"
record "failback (delta)" "$FAILBACK_BYTES"
echo "failback: delta of $CHANGED blocks, $FAILBACK_BYTES bytes on $FAILBACK_DISKS disks in ${STEP_MS} ms"
js 'e.find(x => x.kind === "failback-done").jobVms.map(c => `job drill now replicates ${c.to} instead of ${c.from}`).join("\n")' <"$FAILBACK"
echo
NEW_WEB=$(js 'e.find(x => x.kind === "failback-done").results.find(r => r.failedOver.name === "web-01 (failover)").vm.uuid' <"$FAILBACK")

# --- resume replication -------------------------------------------------------------------------
http POST "$SOURCE_URL/lab/guest-data" "{\"pool\":\"source\",\"target\":\"$NEW_WEB\",\"blocks\":[5],\"seed\":9}" >/dev/null
pass "resumed pass" delta
[ "$PASS_BYTES" -lt $((2 * BLOCK)) ] || fail "the resumed pass sent $PASS_BYTES bytes for 1 changed block"

echo
echo "step                           duration        bytes"
printf '%s\n' "${SUMMARY[@]}"
echo "DR drill passed"
