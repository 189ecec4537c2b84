#!/usr/bin/env bash
# Start a second, independent libvirtd (a second "hypervisor host") whose state
# lives under DIR, for two-host tests (resize, cold migrate, reschedule).
#
# It runs in a private mount namespace where DIR/run, DIR/etc, DIR/lib, DIR/log
# and DIR/cache are bind-mounted over /run/libvirt, /etc/libvirt,
# /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt; libvirtd and its
# virtlogd use DIR/libvirtd.pid and DIR/virtlogd.pid. Guests it starts see the
# rest of the file system as usual. Each daemon runs under
# tools/testbed/subreaper.py (DIR/libvirtd-reaper.pid, DIR/virtlogd-reaper.pid),
# which reaps the QEMU processes libvirt orphans at once (see start-libvirtd.sh).
#
# Prints the URI to reach it on stdout (logs go to stderr):
#     qemu+unix:///system?socket=DIR/run/libvirt-sock
# Idempotent: prints the URI at once when that daemon already answers.
# Stop it with tools/testbed/stop-second-libvirtd.sh DIR.
#
# Usage: tools/testbed/start-second-libvirtd.sh DIR      (as root)
set -euo pipefail

START_TIMEOUT="${START_TIMEOUT:-60}"
SCRIPT="$(realpath "${BASH_SOURCE[0]}")"

die() { echo "start-second-libvirtd: error: $*" >&2; exit 1; }
log() { echo "start-second-libvirtd: $*" >&2; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# mount points inside the namespace -> subdirectory of DIR
MOUNTS=(
    /run/libvirt:run
    /etc/libvirt:etc
    /var/lib/libvirt:lib
    /var/log/libvirt:log
    /var/cache/libvirt:cache
)


# --- inside the private mount namespace (the script re-runs itself) ---------
if [[ ${1-} == --in-namespace ]]; then
    dir="$2"
    for m in "${MOUNTS[@]}"; do
        mount --bind "$dir/${m#*:}" "${m%%:*}"
    done
    if ! pid_of "$dir/virtlogd.pid" virtlogd >/dev/null; then
        rm -f "$dir/virtlogd.pid"
        LIBVIRT_LOG_OUTPUTS="3:file:/var/log/libvirt/virtlogd-daemon.log" \
            under_reaper "$dir/virtlogd-reaper.pid" "$dir/virtlogd.pid" \
            virtlogd -d -p "$dir/virtlogd.pid" 9>&- \
            || die "virtlogd failed to start, see $dir/log/virtlogd-daemon.log"
    fi
    rm -f "$dir/libvirtd.pid"
    LIBVIRT_LOG_OUTPUTS="3:file:/var/log/libvirt/libvirtd-daemon.log" \
        under_reaper "$dir/libvirtd-reaper.pid" "$dir/libvirtd.pid" \
        libvirtd -d -p "$dir/libvirtd.pid" 9>&- \
        || die "libvirtd failed to start, see $dir/log/libvirtd-daemon.log"
    exit 0
fi

# --- outside ------------------------------------------------------------------
(($# == 1)) || die "usage: $0 DIR"
[[ $(id -u) -eq 0 ]] || die "must run as root"
for cmd in libvirtd virtlogd virsh unshare flock python3; do
    command -v "$cmd" >/dev/null || die "$cmd not found: run tools/testbed/install-packages.sh first"
done

mkdir -p "$1"
DIR="$(realpath "$1")"
URI="qemu+unix:///system?socket=$DIR/run/libvirt-sock"
# the path goes into a URI unescaped
[[ $DIR =~ ^[A-Za-z0-9._/-]+$ ]] || die "DIR may only contain letters, digits and ._/- : $DIR"
# the socket path must fit in sockaddr_un (108 bytes)
((${#DIR} + 16 < 108)) || die "DIR too long for a unix socket path: $DIR"


exec 9>"$DIR/.lock"
flock -w 180 9 || die "timed out waiting for $DIR/.lock"

if answers && pid_of "$DIR/virtlogd.pid" virtlogd >/dev/null; then
    log "already running"
    echo "$URI"
    exit 0
fi

if pid="$(pid_of "$DIR/libvirtd.pid" libvirtd)"; then
    # alive but not answering (or its virtlogd died): restart both cleanly
    wait_answers 10 && pid_of "$DIR/virtlogd.pid" virtlogd >/dev/null && { echo "$URI"; exit 0; }
    log "stopping the unresponsive daemons in $DIR"
    bash "$(dirname "$SCRIPT")/stop-second-libvirtd.sh" "$DIR" >&2 \
        || die "could not stop the old daemons in $DIR"
fi

for m in "${MOUNTS[@]}"; do
    mkdir -p "${m%%:*}" "$DIR/${m#*:}"
done
# same configuration as the first daemon, but none of its domains or networks
find /etc/libvirt -maxdepth 1 -type f -name '*.conf' -exec cp -n -t "$DIR/etc" {} +
# no cgroups: they are named machine/qemu-ID-NAME, so a guest of the same name
# (a cold migration) with the same domain id on both daemons would share one
if ! grep -qE '^[[:space:]]*cgroup_controllers' "$DIR/etc/qemu.conf" 2>/dev/null; then
    echo 'cgroup_controllers = [ ]' >>"$DIR/etc/qemu.conf"
fi
# a copy of the QEMU capabilities cache saves the probing at first start
if [[ -d /var/cache/libvirt/qemu/capabilities && ! -e $DIR/cache/qemu ]]; then
    mkdir -p "$DIR/cache/qemu"
    cp -a /var/cache/libvirt/qemu/capabilities "$DIR/cache/qemu/"
fi

log "starting libvirtd in a private mount namespace (state in $DIR)"
unshare -m --propagation private -- bash "$SCRIPT" --in-namespace "$DIR" 9>&- \
    || die "could not start the daemons in $DIR"

if ! wait_answers "$START_TIMEOUT"; then
    echo "--- last lines of $DIR/log/libvirtd-daemon.log ---" >&2
    tail -n 30 "$DIR/log/libvirtd-daemon.log" >&2 || true
    die "second libvirtd does not answer on $URI after ${START_TIMEOUT}s"
fi
log "ready"
echo "$URI"
