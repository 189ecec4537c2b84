#!/usr/bin/env bash
# Start an OpenSSH server on a free 127.0.0.1 port whose state lives under
# DIR, for two-host runs that reach a "remote" host over SSH (the demo's
# second host).
#
# Made in DIR (kept across restarts):
#   ssh_host_ed25519_key(.pub)  its own host key
#   id_ed25519(.pub)            a client key, the only entry of authorized_keys
#   authorized_keys, sshd_config, sshd.pid, sshd.log
# Root may log in by key only (PermitRootLogin prohibit-password); SFTP is
# served in-process (Subsystem sftp internal-sftp).
#
# Prints the port on stdout (logs go to stderr). Idempotent: prints the port
# at once when the sshd of DIR already runs. The caller writes its
# known_hosts entry from DIR/ssh_host_ed25519_key.pub:
#     [127.0.0.1]:PORT ssh-ed25519 AAAA...
# Stop it with tools/testbed/stop-sshd.sh DIR.
#
# Usage: tools/testbed/start-sshd.sh DIR      (as root)
set -euo pipefail

SSHD=/usr/sbin/sshd
START_TIMEOUT="${START_TIMEOUT:-15}"

die() { echo "start-sshd: error: $*" >&2; exit 1; }
log() { echo "start-sshd: $*" >&2; }
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 1)) || die "usage: $0 DIR"
[[ $(id -u) -eq 0 ]] || die "must run as root"
[[ -x $SSHD ]] || die "$SSHD not found: run tools/testbed/install-packages.sh first"
for cmd in ssh-keygen python3 flock; do
    command -v "$cmd" >/dev/null || die "$cmd not found: run tools/testbed/install-packages.sh first"
done

mkdir -p "$1"
DIR="$(realpath "$1")"
exec 9>"$DIR/.lock"
flock -w 60 9 || die "timed out waiting for $DIR/.lock"

# banner PORT: an SSH server answers on 127.0.0.1:PORT
banner() {
    python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as sock:
    sys.exit(0 if sock.recv(64).startswith(b"SSH-2.0-") else 1)
PY
}

configured_port() { awk '$1 == "Port" {print $2}' "$DIR/sshd_config" 2>/dev/null; }

if pid_of "$DIR/sshd.pid" sshd >/dev/null && port="$(configured_port)" \
        && [[ -n $port ]] && banner "$port"; then
    log "already running on 127.0.0.1:$port"
    echo "$port"
    exit 0
fi
if pid="$(pid_of "$DIR/sshd.pid" sshd)"; then
    log "stopping the unresponsive sshd (pid $pid)"
    bash "$(dirname "${BASH_SOURCE[0]}")/stop-sshd.sh" "$DIR" >&2
fi

for key in ssh_host_ed25519_key id_ed25519; do
    [[ -s $DIR/$key ]] || ssh-keygen -q -t ed25519 -N "" -C "vmflow-testbed-$key" \
        -f "$DIR/$key" </dev/null || die "ssh-keygen $key failed"
done
install -m 0600 "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
# privilege separation directory, normally made by the init script
install -d -m 0755 /run/sshd

free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A free port can be taken between the probe and sshd's bind: try three.
for _attempt in 1 2 3; do
    port="$(free_port)"
    cat >"$DIR/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $DIR/ssh_host_ed25519_key
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel VERBOSE
CONF
    "$SSHD" -t -f "$DIR/sshd_config" || die "sshd rejects $DIR/sshd_config"
    rm -f "$DIR/sshd.pid"
    # 9>&-: the daemon must not inherit (and so hold) our lock
    "$SSHD" -f "$DIR/sshd_config" -E "$DIR/sshd.log" 9>&- </dev/null \
        || die "sshd failed to start, see $DIR/sshd.log"
    deadline=$((SECONDS + START_TIMEOUT))
    until banner "$port"; do
        ((SECONDS < deadline)) || break
        sleep 0.1
    done
    if banner "$port"; then
        log "ready on 127.0.0.1:$port (state in $DIR)"
        echo "$port"
        exit 0
    fi
    bash "$(dirname "${BASH_SOURCE[0]}")/stop-sshd.sh" "$DIR" >&2
done
tail -n 20 "$DIR/sshd.log" >&2 || true
die "sshd did not answer on 127.0.0.1 (three ports tried), see $DIR/sshd.log"
