#!/usr/bin/env bash
# Stop a libvirtd started by tools/testbed/start-second-libvirtd.sh DIR.
#
# Its running guests are destroyed first (through libvirt when it answers;
# any QEMU left over from DIR/run/qemu/*.pid is killed), then libvirtd and
# its virtlogd are stopped, and last the subreapers they ran under (which
# normally exit by themselves once their daemon has). DIR itself is left in
# place (logs stay readable).
# Idempotent: nothing to do is success.
#
# Usage: tools/testbed/stop-second-libvirtd.sh DIR      (as root)
set -euo pipefail

die() { echo "stop-second-libvirtd: error: $*" >&2; exit 1; }
log() { echo "stop-second-libvirtd: $*"; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 1)) || die "usage: $0 DIR"
[[ -d $1 ]] || { log "no such directory $1, nothing to stop"; exit 0; }
DIR="$(realpath "$1")"
URI="qemu+unix:///system?socket=$DIR/run/libvirt-sock"


# stop PIDFILE NAME: SIGTERM, SIGKILL after 10 s, remove the pid file
stop() {
    local pid i
    if pid="$(pid_of "$1" "$2")"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            pid_of "$1" "$2" >/dev/null || break
            sleep 0.1
        done
        if pid_of "$1" "$2" >/dev/null; then
            log "$2 (pid $pid) ignored SIGTERM, killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$1"
}

if pid_of "$DIR/libvirtd.pid" libvirtd >/dev/null \
        && names="$(timeout 10 virsh -c "$URI" list --name 2>/dev/null)"; then
    while read -r name; do
        [[ -n $name ]] || continue
        log "destroying guest $name"
        timeout 30 virsh -c "$URI" destroy "$name" >/dev/null 2>&1 \
            || log "could not destroy $name through libvirt"
    done <<<"$names"
fi

stop "$DIR/libvirtd.pid" libvirtd

# QEMU processes this daemon started but could not destroy
shopt -s nullglob
for pidfile in "$DIR"/run/qemu/*.pid; do
    [[ $pidfile == */driver.pid ]] && continue
    for comm in qemu-system-x86 qemu-system-x86_64; do
        if pid_of "$pidfile" "$comm" >/dev/null; then
            log "killing leftover QEMU from $pidfile"
            stop "$pidfile" "$comm"
        fi
    done
done

stop "$DIR/virtlogd.pid" virtlogd
stop "$DIR/libvirtd-reaper.pid" vmflow-reaper
stop "$DIR/virtlogd-reaper.pid" vmflow-reaper
log "stopped ($DIR)"
