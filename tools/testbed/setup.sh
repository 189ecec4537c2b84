#!/usr/bin/env bash
# Prepare this machine for the whole test suite (what CI runs before pytest):
#   1. Debian packages + .venv with the project and its test extras
#   2. libvirtd (qemu:///system) running
#   3. the tiny test guest built into .testbed/guest
# Every step is idempotent and quick when its work is already done.
#
# Usage: tools/testbed/setup.sh      (as root, Debian 12)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
start=$SECONDS

bash "$HERE/install-packages.sh"
bash "$HERE/start-libvirtd.sh"
bash "$HERE/build-guest.sh"

echo "setup: test bed ready in $((SECONDS - start)) s"
