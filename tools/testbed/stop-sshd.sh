#!/usr/bin/env bash
# Stop an sshd started by tools/testbed/start-sshd.sh DIR (SIGTERM, SIGKILL
# after 10 s). DIR is left in place (keys and log stay).
# Idempotent: nothing to do is success.
#
# Usage: tools/testbed/stop-sshd.sh DIR      (as root)
set -euo pipefail

die() { echo "stop-sshd: error: $*" >&2; exit 1; }
log() { echo "stop-sshd: $*"; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 1)) || die "usage: $0 DIR"
[[ -d $1 ]] || { log "no such directory $1, nothing to stop"; exit 0; }
PIDFILE="$(realpath "$1")/sshd.pid"

if pid="$(pid_of "$PIDFILE" sshd)"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid_of "$PIDFILE" sshd >/dev/null || break
        sleep 0.1
    done
    if pid_of "$PIDFILE" sshd >/dev/null; then
        log "sshd (pid $pid) ignored SIGTERM, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped (pid $pid)"
fi
rm -f "$PIDFILE"
