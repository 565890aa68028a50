#!/bin/sh
# The offline seed procedure for one VM of a continuous-replication job, as a script.
#
# When the first full copy is too big for the link, make it locally and carry it:
#   1. create the job disabled (it must not run until the seed is in place);
#   2. snapshot the VM and export the snapshot to files;
#   3. carry the files, import them on one of the job's target SRs — never start the copy;
#   4. attach the seed metadata (validated; --verify compares the disks' content);
#   5. run the job once (a delta: only blocks changed since the snapshot), then enable it.
#
# Two ways to do steps 2–4:
#   MODE=guided (default)  xen-cr seed export / seed import: VHD files (or FORMAT=xva: one XVA)
#                          + manifest.json with the sha256 of each file, checked before anything
#                          is written on the target.
#   MODE=xe                the classic way with xe on the hosts (XVA through vm-export and
#                          vm-import), then xen-cr seed on the imported copy (a template,
#                          which seed makes a VM; xo-cr-seed in its place works too: run then
#                          adopts the template, see README "Seeding a first copy by hand").
#
# Required: JOB (name or id of an existing job), VM (source VM uuid), SR (target SR uuid, one of
# the job's SRs). Optional: SEED_DIR (default ./seed-$VM), XEN_CR (default xen-cr), FORMAT
# (vhd or xva, MODE=guided), and for
# MODE=xe: SOURCE_HOST, TARGET_HOST, XE_USER (root), XE_PASSWORD_FILE.
# Exit codes are xen-cr's: 5 means the seed was refused and nothing was written.
set -eu

: "${JOB:?set JOB to the job name or id}"
: "${VM:?set VM to the source VM uuid}"
: "${SR:?set SR to the target SR uuid}"
MODE=${MODE:-guided}
FORMAT=${FORMAT:-vhd}
SEED_DIR=${SEED_DIR:-./seed-$VM}
XEN_CR=${XEN_CR:-xen-cr}

# 1. the job must not run before the seed is in place
$XEN_CR job disable "$JOB"

case "$MODE" in
guided)
  # 2. snapshot with the job's metadata, disks as VHD files, manifest with sha256
  $XEN_CR seed export --job "$JOB" --vm "$VM" --out "$SEED_DIR" --format "$FORMAT"
  # 3. (carry $SEED_DIR to the target site here) 4. check, import, attach the metadata
  $XEN_CR seed import --job "$JOB" --from "$SEED_DIR" --sr "$SR"
  ;;
xe)
  : "${SOURCE_HOST:?set SOURCE_HOST for MODE=xe}"
  : "${TARGET_HOST:?set TARGET_HOST for MODE=xe}"
  : "${XE_PASSWORD_FILE:?set XE_PASSWORD_FILE for MODE=xe}"
  XE_USER=${XE_USER:-root}
  mkdir -p "$SEED_DIR"
  xe_src() { xe -s "$SOURCE_HOST" -u "$XE_USER" -pwf "$XE_PASSWORD_FILE" "$@"; }
  xe_tgt() { xe -s "$TARGET_HOST" -u "$XE_USER" -pwf "$XE_PASSWORD_FILE" "$@"; }
  # 2. snapshot (never delete it: it is the base of the first delta) and export it
  SNAPSHOT=$(xe_src vm-snapshot uuid="$VM" new-name-label="seed for $JOB")
  xe_src vm-export vm="$SNAPSHOT" filename="$SEED_DIR/seed.xva"
  # 3. (carry seed.xva) import it on the target SR; do NOT start the imported copy
  COPY=$(xe_tgt vm-import filename="$SEED_DIR/seed.xva" sr-uuid="$SR")
  # 4. attach the metadata; --verify streams both sides and compares sha256 per disk. The copy
  #    is a template (an exported snapshot imports as one): seed makes it a VM, start blocked.
  $XEN_CR seed --job "$JOB" --snapshot "$SNAPSHOT" --target-vm "$COPY" --verify
  ;;
*)
  echo "MODE must be guided or xe" >&2
  exit 2
  ;;
esac

# 5. the first run is a delta; then the schedule takes over
$XEN_CR run "$JOB"
$XEN_CR job enable "$JOB"
