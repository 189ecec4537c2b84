#!/usr/bin/env bash
# What a user gets from a plain `pip install .` (no extras): every command,
# and the main operations on the embedded default (SQLite + SQL job board),
# here on libvirt's in-process test:///default driver. A backend whose
# optional package is missing must fail in one line naming the extra.
#
# Usage: tools/testbed/check-plain-install.sh   (after setup.sh: needs the
# Debian packages that libvirt-python and qemu-img come from)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { echo "check-plain-install: error: $*" >&2; exit 1; }
log() { echo "check-plain-install: $*"; }
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
start=$SECONDS

work="$(mktemp -d /tmp/vmflow-plain.XXXXXX)"
trap 'rm -rf "$work"' EXIT
venv="$work/venv"
python3 -m venv "$venv" || die "python3 -m venv $venv failed"
# from a copy of the tree, so that the build leaves nothing in the checkout
mkdir "$work/src"
tar -C "$REPO_ROOT" --exclude=./.git --exclude=./.venv --exclude=./.testbed \
    --exclude=./build --exclude='*.egg-info' -cf - . | tar -C "$work/src" -xf -
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$work/src" \
        >"$work/pip.log" 2>&1 \
    || die "pip install . (no extras) failed: $(tail -20 "$work/pip.log")"
for package in redis psycopg2 pymysql pytest; do
    if "$venv/bin/python" -c "import $package" 2>/dev/null; then
        die "a plain install brought the optional package $package"
    fi
done

config="$work/vmflow.conf"
printf '[DEFAULT]\nstate_path = %s/state\n' "$work" >"$config"
vmflow() { "$venv/bin/vmflow" --config-file "$config" "$@"; }

check() {  # check WHAT COMMAND...: the command must succeed
    local what=$1; shift
    "$@" >"$work/out" 2>"$work/err" \
        || die "$what failed: $(cat "$work/err" "$work/out")"
}

help="$(vmflow help 2>&1)" || die "vmflow help failed: $help"
# every command setup.cfg declares (cliff shows "server_create" as
# "server create")
commands="$(python3 -c '
import configparser, sys
parser = configparser.ConfigParser()
parser.read(sys.argv[1])
for line in parser["options.entry_points"]["vmflow.cli"].splitlines():
    if line.strip():
        print(line.split("=")[0].strip().replace("_", " "))
' "$REPO_ROOT/setup.cfg")"
[[ $(wc -l <<<"$commands") -gt 10 ]] || die "setup.cfg lists too few commands"
while read -r command; do
    grep -q "^  $command  " <<<"$help" || die "vmflow help lists no '$command'"
done <<<"$commands"
check "vmflow help server create" vmflow help server create
check "vmflow help job list" vmflow help job list
check "vmflow help audit" vmflow help audit

qemu-img create -q -f qcow2 "$work/tiny.qcow2" 16M
mkdir -p "$work/instances"
check "db sync" vmflow db sync
check "host add" vmflow host add h1 --uri test:///default --vcpus 4 \
    --memory-mb 4096 --disk-gb 20 --instances-path "$work/instances"
check "flavor create" vmflow flavor create tiny --vcpus 1 --ram 64 --disk 1
check "image add" vmflow image add img --file "$work/tiny.qcow2"
check "server create --wait" vmflow server create vm1 --flavor tiny \
    --image img --wait
check "server show" vmflow server show vm1 -f value -c vm_state
[[ "$(cat "$work/out")" == active ]] || die "vm1 is $(cat "$work/out"), not active"
check "server delete --wait" vmflow server delete vm1 --wait
check "audit" vmflow audit

printf '[jobboard]\nbackend = redis\n' >>"$config"
if vmflow job list >"$work/out" 2>"$work/err"; then
    die "job list on the redis board without the redis package succeeded"
fi
expected="vmflow: error: [jobboard] backend = redis needs the Python package redis, which is not installed: pip install 'vmflow[redis]'"
[[ "$(cat "$work/err")" == "$expected" ]] \
    || die "the redis backend without redis said: $(cat "$work/err")"

log "plain install: every command present, build/delete/audit work, redis" \
    "backend refused in one line ($((SECONDS - start)) s)"
