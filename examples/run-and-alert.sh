#!/bin/sh
# Runs due xen-cr jobs and reacts to the exit code (the table is the same for every command).
# Usage: run-and-alert.sh [extra xen-cr flags]; set XEN_CR (command) and ALERT_MAIL as needed.
set -u

XEN_CR=${XEN_CR:-"node /opt/xen-cr/bin/xen-cr.js"}
ALERT_MAIL=${ALERT_MAIL:-root}
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

# shellcheck disable=SC2086 # XEN_CR is a command line on purpose
$XEN_CR "$@" run --due >"$LOG" 2>&1
status=$?

alert() {
  if command -v mail >/dev/null 2>&1; then
    mail -s "xen-cr: $1" "$ALERT_MAIL" <"$LOG"
  else
    echo "xen-cr: $1" >&2
    cat "$LOG" >&2
  fi
}

case $status in
  0) ;;                                                     # every due VM replicated
  1) alert "at least one VM failed; its previous replica is intact" ;;
  2) alert "usage or configuration error; fix the config or job store" ;;
  # 3 only when nothing ran because every due VM was another run's: leased by another controller
  # (or an overlapping run), or replicated by one since this run started — a harmless overlap.
  # Any failed VM makes the exit 1, even when other VMs or jobs were leased elsewhere.
  3) echo "xen-cr: every due VM was another run's (leased or just replicated elsewhere); nothing to do here" >&2 ;;
  130|143) alert "interrupted by a signal before the pass completed; what it created was removed" ;;
  4) alert "cannot reach or log in to a pool" ;;
  5) alert "validation refused the request; nothing was written" ;;
  *) alert "unexpected exit status $status" ;;
esac
exit "$status"
