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
web_pid=
trap '[[ -z $web_pid ]] || kill "$web_pid" 2>/dev/null; rm -rf "$work"' EXIT
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
check "vmflow help web" vmflow help web

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
check "flow show (svg)" vmflow flow show --server vm1 --format svg \
    -o "$work/delete.svg"
"$venv/bin/python" - "$work/delete.svg" <<'EOF' \
        || die "flow show's SVG of the delete has no MarkInstanceDeleted step"
import sys
from lxml import etree
ids = {element.get("id") for element in etree.parse(sys.argv[1]).iter()}
assert "atom-MarkInstanceDeleted" in ids, sorted(filter(None, ids))
EOF

# the web view: its templates are installed with the package, and the
# build and the delete above are listed, each job page with its graph
port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$venv/bin/vmflow" --config-file "$config" web --port "$port" \
    >"$work/web.out" 2>"$work/web.err" &
web_pid=$!
for _ in $(seq 300); do
    grep -q serving "$work/web.out" && break
    kill -0 "$web_pid" 2>/dev/null || die "vmflow web exited: $(cat "$work/web.err")"
    sleep 0.1
done
grep -q serving "$work/web.out" || die "vmflow web did not start: $(cat "$work/web.err")"
"$venv/bin/python" - "http://127.0.0.1:$port/" <<'EOF' \
        || die "the web view's pages are wrong (vmflow web said: $(cat "$work/web.err"))"
import re, sys, urllib.request
base = sys.argv[1]
jobs = urllib.request.urlopen(base, timeout=60).read().decode()
links = re.findall(r'href="/(jobs/[0-9a-f-]{36})"', jobs)
assert "Recent jobs" in jobs and len(links) == 2, jobs
for link in links:
    page = urllib.request.urlopen(base + link, timeout=60).read().decode()
    assert "<svg" in page and "ENDED" in page, page
EOF
kill "$web_pid"
wait "$web_pid" || true
web_pid=

printf '[jobboard]\nbackend = redis\n' >>"$config"
if vmflow job list >"$work/out" 2>"$work/err"; then
    die "job list on the redis board without the redis package succeeded"
fi
expected="vmflow: error: [jobboard] backend = redis needs the Python package redis, which is not installed: pip install 'vmflow[redis]'"
[[ "$(cat "$work/err")" == "$expected" ]] \
    || die "the redis backend without redis said: $(cat "$work/err")"

log "plain install: every command present, build/delete/audit and the web" \
    "view work, redis backend refused in one line ($((SECONDS - start)) s)"
