#!/usr/bin/env bash
# Install every Debian package the test bed needs, then the project's
# virtualenv (.venv in the repository root) with the test extras.
#
# Idempotent and quick when everything is already there: apt is not touched
# when all packages are installed, and pip is skipped while setup.cfg and
# pyproject.toml are unchanged since the last successful install.
#
# Usage: tools/testbed/install-packages.sh      (as root, Debian 12)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO_ROOT/.venv"

die() { echo "install-packages: error: $*" >&2; exit 1; }
log() { echo "install-packages: $*"; }

PACKAGES=(
    # hypervisor: libvirtd + QEMU (TCG) and the client tools
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
    qemu-system-x86 qemu-utils
    # building libvirt-python from PyPI
    libvirt-dev pkg-config gcc
    # the tiny guest: busybox initramfs, kernel modules may be compressed
    busybox-static cpio xz-utils zstd gzip
    # real sshd/ssh-keygen for the SSH fixtures
    openssh-server openssh-client
    # flow graph rendering (dot)
    graphviz
    # the web view's tests drive a headless browser
    chromium chromium-driver
    # ps/pgrep/kill, unshare/mount/flock (util-linux), ip
    procps util-linux iproute2
)

[[ $(id -u) -eq 0 ]] || die "must run as root (apt-get install, libvirtd)"
command -v apt-get >/dev/null || die "apt-get not found: the test bed needs Debian 12"
command -v python3 >/dev/null || die "python3 not found"

# A Python without venv/ensurepip or without its headers (Debian's own
# python3) needs the Debian packages for them; pyenv builds have both.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    PACKAGES+=(python3-venv)
fi
if ! python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    PACKAGES+=(python3-dev)
fi

is_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

apt_lists_fresh() {
    # fresh = the newest Packages index is younger than a day (apt dates it by
    # the mirror's Last-Modified: a false "stale" only costs one update) and
    # than every sources file (a suite added since then has no index yet)
    local newest
    # shellcheck disable=SC2012  # apt list names are plain
    newest="$(ls -t /var/lib/apt/lists/*_Packages* 2>/dev/null | head -n 1 || true)"
    [[ -n $newest ]] || return 1
    [[ -n $(find "$newest" -mmin -1440) ]] || return 1
    [[ -z $(find /etc/apt/sources.list /etc/apt/sources.list.d -newer "$newest" -type f 2>/dev/null) ]]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    log "all ${#PACKAGES[@]} Debian packages already installed"
else
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    updated=no
    if ! apt_lists_fresh; then
        apt-get update -qq || die "apt-get update failed"
        updated=yes
    fi
    if ! apt-get install -y -qq "${missing[@]}"; then
        # stale package lists point at files the mirror no longer has
        [[ $updated == no ]] || die "apt-get install ${missing[*]} failed"
        log "install failed, refreshing package lists and retrying"
        apt-get update -qq || die "apt-get update failed"
        apt-get install -y -qq "${missing[@]}" || die "apt-get install ${missing[*]} failed"
    fi
fi

# --- Python virtualenv -------------------------------------------------------
if [[ ! -x $VENV/bin/python ]]; then
    log "creating $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
fi

stamp_file="$VENV/.vmflow-test-install"
stamp="$(cat "$REPO_ROOT/setup.cfg" "$REPO_ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [[ -f $stamp_file && $(cat "$stamp_file") == "$stamp" ]] \
        && "$VENV/bin/python" -c 'import vmflow, libvirt, paramiko, pytest, lxml' >/dev/null 2>&1; then
    log "virtualenv up to date"
else
    log "pip install -e '.[test]' into $VENV"
    rm -f "$stamp_file"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "${REPO_ROOT}[test]" \
        || die "pip install -e '.[test]' failed"
    echo "$stamp" >"$stamp_file"
fi
log "done"
