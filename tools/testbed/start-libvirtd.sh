#!/usr/bin/env bash
# Start the machine's libvirtd (qemu:///system) by hand: there is no systemd.
#
# Idempotent: does nothing when libvirtd already answers. Recovers from dead
# daemons (stale pid files are removed) and from a libvirtd that is alive but
# no longer answers (it is stopped and started again). Waits until
# `virsh -c qemu:///system list` answers, at most START_TIMEOUT seconds.
#
# virtlogd and libvirtd each run under tools/testbed/subreaper.py (pid files
# /run/virtlogd-reaper.pid, /run/libvirtd-reaper.pid), which reaps the QEMU
# processes libvirt leaves orphaned at once: PID 1 here reaps them lazily and
# libvirt's destroy waits for it (1.2-2 s a destroy without the reaper).
# An already running libvirtd is left as it is, reaper or not.
#
# Logs: /var/log/libvirt/libvirtd-daemon.log, /var/log/libvirt/virtlogd-daemon.log
#
# Usage: tools/testbed/start-libvirtd.sh      (as root)
set -euo pipefail

URI="qemu:///system"
START_TIMEOUT="${START_TIMEOUT:-60}"
LIBVIRTD_PID=/run/libvirtd.pid
VIRTLOGD_PID=/run/virtlogd.pid
LIBVIRTD_REAPER_PID=/run/libvirtd-reaper.pid
VIRTLOGD_REAPER_PID=/run/virtlogd-reaper.pid
# libvirtd's drivers lock these; they name the daemon even without its pid file
DRIVER_PIDS=(/run/libvirt/qemu/driver.pid /run/libvirt/network/driver.pid)
LIBVIRTD_LOG=/var/log/libvirt/libvirtd-daemon.log
VIRTLOGD_LOG=/var/log/libvirt/virtlogd-daemon.log
LOCK_FILE=/run/vmflow-testbed-libvirtd.lock

die() { echo "start-libvirtd: error: $*" >&2; exit 1; }
log() { echo "start-libvirtd: $*"; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "must run as root"
for cmd in libvirtd virtlogd virsh flock python3; do
    command -v "$cmd" >/dev/null || die "$cmd not found: run tools/testbed/install-packages.sh first"
done


# stop_pid PID: SIGTERM, then SIGKILL after 10 s
stop_pid() {
    local i
    kill -TERM "$1" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo Z) == Z ]] && return 0
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
}


start_virtlogd() {
    pid_of "$VIRTLOGD_PID" virtlogd >/dev/null && return 0
    rm -f "$VIRTLOGD_PID"
    log "starting virtlogd"
    # 9>&-: the daemon must not inherit (and so hold) our lock
    LIBVIRT_LOG_OUTPUTS="3:file:$VIRTLOGD_LOG" \
        under_reaper "$VIRTLOGD_REAPER_PID" "$VIRTLOGD_PID" \
        virtlogd -d -p "$VIRTLOGD_PID" 9>&- \
        || die "virtlogd failed to start, see $VIRTLOGD_LOG"
}

# serialise concurrent callers (parallel test sessions)
exec 9>"$LOCK_FILE"
flock -w 180 9 || die "timed out waiting for $LOCK_FILE"

mkdir -p /run/libvirt /var/log/libvirt /var/lib/libvirt /var/cache/libvirt
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null \
    || useradd -r -g libvirt-qemu -d /var/lib/libvirt -M -s /usr/sbin/nologin libvirt-qemu

# libvirt checks /dev/kvm as the QEMU user while its capability probe (run
# with root's access) finds KVM usable: the mismatch makes it re-probe QEMU
# (about 2 s each, many times) on every domain start, so `create` took 44 s.
# Giving the QEMU user access keeps the cached capabilities valid. Guests
# still use TCG: the tests ask for <domain type='qemu'>.
if [[ -c /dev/kvm ]]; then
    getent group kvm >/dev/null || groupadd -r kvm
    id -nG libvirt-qemu | grep -qw kvm || usermod -a -G kvm libvirt-qemu
    [[ $(stat -c %G:%a /dev/kvm) == kvm:660 ]] || { chgrp kvm /dev/kvm && chmod 660 /dev/kvm; }
fi

start_virtlogd

if answers; then
    log "libvirtd already running ($URI answers)"
    exit 0
fi

# A libvirtd that is alive but does not answer: give one that is starting a
# moment, then stop it (it holds the driver locks a new one needs).
stale=()
for file in "$LIBVIRTD_PID" "${DRIVER_PIDS[@]}"; do
    if pid="$(pid_of "$file" libvirtd)" && [[ " ${stale[*]-} " != *" $pid "* ]]; then
        stale+=("$pid")
    fi
done
if ((${#stale[@]})); then
    if wait_answers 10; then
        log "libvirtd ready ($URI)"
        exit 0
    fi
    log "stopping unresponsive libvirtd (pid ${stale[*]})"
    for pid in "${stale[@]}"; do stop_pid "$pid"; done
fi

rm -f "$LIBVIRTD_PID"
log "starting libvirtd"
LIBVIRT_LOG_OUTPUTS="3:file:$LIBVIRTD_LOG" \
    under_reaper "$LIBVIRTD_REAPER_PID" "$LIBVIRTD_PID" \
    libvirtd -d -p "$LIBVIRTD_PID" 9>&- \
    || { tail -n 20 "$LIBVIRTD_LOG" >&2 || true; die "libvirtd failed to start, see $LIBVIRTD_LOG"; }

if ! wait_answers "$START_TIMEOUT"; then
    echo "--- last lines of $LIBVIRTD_LOG ---" >&2
    tail -n 30 "$LIBVIRTD_LOG" >&2 || true
    die "libvirtd does not answer on $URI after ${START_TIMEOUT}s (pid file $LIBVIRTD_PID)"
fi
log "libvirtd ready ($URI)"
