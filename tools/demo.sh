#!/usr/bin/env bash
# The main job on the embedded default (SQLite + local libvirtd): set the
# machine up, register it as a host, and boot, check and remove a real VM.
set -euo pipefail
demo_start=$SECONDS
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

step() { echo; echo "demo: --- $* ---"; }

step "register this machine as a host, a flavor, the tiny guest's image, a quota"
set -x
vmflow db sync
vmflow host add local --uri qemu:///system --vcpus "$(nproc)" \
    --memory-mb 2048 --disk-gb 10 --instances-path "$DEMO/instances"
vmflow flavor create tiny --vcpus 1 --ram 256 --disk 1
vmflow image add tiny-guest --file "$GUEST_DISK" --kernel "$GUEST_KERNEL" \
    --initrd "$GUEST_INITRD_ACPI" --cmdline "$GUEST_CMDLINE"
vmflow quota set demo --instances 2 --cores 2 --ram 512
vmflow host list
{ set +x; } 2>/dev/null

# The guest prints "$GUEST_MARKER <variant>" on its serial console each
# time it has booted (the console file is appended to across restarts):
# count those lines in the whole log to see it come up (again).
boots() {
    vmflow server console-log demo-vm --max-bytes 16777216 \
        | grep -c "$GUEST_MARKER" || true
}
wait_for_boot() {   # wait_for_boot N WHAT: until the console shows N boots
    local deadline=$((SECONDS + 120))
    until (( $(boots) >= $1 )); do
        if (( SECONDS >= deadline )); then
            vmflow server console-log demo-vm | tail -n 20 >&2
            echo "demo: $2: the guest did not boot (expected $1 boot markers)" >&2
            exit 1
        fi
        sleep 1
    done
    echo "demo: $2: the console shows boot number $1"
}

# No vmflow-engine runs here: --wait runs each job in this process and
# prints each step of its flow as it starts.
step "build a server"
set -x
vmflow server create demo-vm --flavor tiny --image tiny-guest --wait
vmflow server show demo-vm -f json
{ set +x; } 2>/dev/null
wait_for_boot 1 "after the build"

step "soft reboot: ACPI shutdown, start again (hard if the guest ignores it)"
set -x
vmflow server reboot demo-vm --wait -c vm_state -c power_state
{ set +x; } 2>/dev/null
wait_for_boot 2 "after the soft reboot"

step "hard reboot: power off, domain redefined from the database, start"
set -x
vmflow server reboot demo-vm --hard --wait -c vm_state -c power_state
{ set +x; } 2>/dev/null
wait_for_boot 3 "after the hard reboot"

step "stop, then start"
set -x
vmflow server stop demo-vm --wait -c vm_state -c power_state
vmflow server start demo-vm --wait -c vm_state -c power_state
{ set +x; } 2>/dev/null
wait_for_boot 4 "after the start"

step "what happened: one action per operation, one event per step"
set -x
vmflow server event-list demo-vm -c action -c event -c result
{ set +x; } 2>/dev/null

step "delete, and check nothing is left (vmflow audit)"
set -x
vmflow server delete demo-vm --wait
vmflow server list --deleted
vmflow audit
{ set +x; } 2>/dev/null
echo "demo: done in $((SECONDS - demo_start)) s"
