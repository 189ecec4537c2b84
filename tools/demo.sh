#!/usr/bin/env bash
# The main job on the embedded default (SQLite + local libvirtd): set the
# machine up, register it as a host, and boot, check and remove a real VM.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"

bash tools/testbed/setup.sh
source .testbed/guest/guest.env

DEMO=/var/lib/vmflow-demo          # QEMU (user libvirt-qemu) must reach it
rm -rf "$DEMO"
install -d -m 0755 "$DEMO" "$DEMO/instances"
cat > "$DEMO/vmflow.conf" <<CONF
[DEFAULT]
state_path = $DEMO/state
[libvirt]
virt_type = qemu
CONF
vmflow() { "$REPO/.venv/bin/vmflow" --config-file "$DEMO/vmflow.conf" "$@"; }

set -x
vmflow db sync
vmflow host add local --uri qemu:///system --vcpus "$(nproc)" \
    --memory-mb 2048 --disk-gb 10 --instances-path "$DEMO/instances"
vmflow flavor create tiny --vcpus 1 --ram 256 --disk 1
vmflow image add tiny-guest --file "$GUEST_DISK" --kernel "$GUEST_KERNEL" \
    --initrd "$GUEST_INITRD_ACPI" --cmdline "$GUEST_CMDLINE"
vmflow quota set demo --instances 2 --cores 2 --ram 512
vmflow host list

# No vmflow-engine runs here: --wait runs each job in this process.
vmflow server create demo-vm --flavor tiny --image tiny-guest --wait
vmflow server show demo-vm -f json
set +x
for _ in $(seq 90); do
    if vmflow server console-log demo-vm | grep -q VMFLOW-GUEST-BOOTED; then
        break
    fi
    sleep 1
done
vmflow server console-log demo-vm | grep VMFLOW-GUEST-BOOTED \
    || { echo "demo: the guest did not boot" >&2; exit 1; }
set -x
vmflow server event-list demo-vm -c event -c host -c result
vmflow server delete demo-vm --wait
vmflow server list --deleted
vmflow audit
set +x
echo "demo: done"
