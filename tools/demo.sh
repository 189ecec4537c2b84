#!/usr/bin/env bash
# The main job on the embedded default (SQLite + local libvirtd): set the
# machine up, register it as a host, and boot, check and remove a real VM;
# with a second libvirtd and an sshd on loopback registered as a second host,
# resize the VM onto it, revert, resize again and confirm.
set -euo pipefail
demo_start=$SECONDS
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"

bash tools/testbed/setup.sh
source .testbed/guest/guest.env

DEMO=/var/lib/vmflow-demo          # QEMU (user libvirt-qemu) must reach it
HV2="$DEMO/hv2"                    # the second libvirtd's state
SSHD="$DEMO/sshd"                  # the sshd's keys, config and log
# what a run stopped half-way may have left running
bash tools/testbed/stop-second-libvirtd.sh "$HV2" >/dev/null
bash tools/testbed/stop-sshd.sh "$SSHD" >/dev/null
rm -rf "$DEMO"
install -d -m 0755 "$DEMO" "$DEMO/instances" "$DEMO/instances2"
cat > "$DEMO/vmflow.conf" <<CONF
[DEFAULT]
state_path = $DEMO/state
[libvirt]
virt_type = qemu
[ssh]
known_hosts_file = $DEMO/known_hosts
key_file = $SSHD/id_ed25519
CONF
vmflow() { "$REPO/.venv/bin/vmflow" --config-file "$DEMO/vmflow.conf" "$@"; }

# On any exit: a failed run deletes its VM (and if even that fails, removes
# its domain from qemu:///system: other vmflow-* domains there are not ours),
# then stops the second libvirtd (destroying its guests) and the sshd.
demo_uuid=
clean_up() {
    local status=$?
    { set +x; } 2>/dev/null
    if ((status != 0)) && [[ -n $demo_uuid ]]; then
        echo "demo: failed (exit $status), removing demo-vm" >&2
        if ! timeout 120 "$REPO/.venv/bin/vmflow" --config-file "$DEMO/vmflow.conf" \
                server delete "$demo_uuid" --wait >/dev/null 2>&1; then
            virsh -c qemu:///system destroy "vmflow-$demo_uuid" >/dev/null 2>&1 || true
            virsh -c qemu:///system undefine "vmflow-$demo_uuid" >/dev/null 2>&1 || true
        fi
    fi
    bash "$REPO/tools/testbed/stop-second-libvirtd.sh" "$HV2" >/dev/null || status=1
    bash "$REPO/tools/testbed/stop-sshd.sh" "$SSHD" >/dev/null || status=1
    exit "$status"
}
trap clean_up EXIT

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
demo_uuid="$(vmflow server show demo-vm -f value -c uuid)"
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

step "a second host: another libvirtd, reached over SSH on loopback"
URI2="$(bash tools/testbed/start-second-libvirtd.sh "$HV2")"
SSH_PORT="$(bash tools/testbed/start-sshd.sh "$SSHD")"
# its host key is the only one vmflow accepts there (never added blindly)
read -r key_type key_data _ < "$SSHD/ssh_host_ed25519_key.pub"
echo "[127.0.0.1]:$SSH_PORT $key_type $key_data" > "$DEMO/known_hosts"
set -x
vmflow host add second --uri "$URI2" --vcpus "$(nproc)" --memory-mb 2048 \
    --disk-gb 10 --instances-path "$DEMO/instances2" \
    --ssh "root@127.0.0.1:$SSH_PORT"
vmflow flavor create small --vcpus 2 --ram 384 --disk 2
vmflow host list
{ set +x; } 2>/dev/null

# The console log lives beside the disk on the server's current host: a
# fresh one on the second host, the first host's one again after a revert.
guest_size() {  # guest_size URI: "vCPUs memory" of demo-vm's domain there
    virsh -c "$1" dominfo "vmflow-$demo_uuid" \
        | awk '/^CPU\(s\)/ {c = $2} /^Max memory/ {m = $3 / 1024} END {print c " vCPUs, " m " MiB"}'
}

step "resize to a bigger flavor: the disk is copied to the second host over SSH"
set -x
vmflow server resize demo-vm --flavor small --wait -c vm_state -c host -c flavor
{ set +x; } 2>/dev/null
wait_for_boot 1 "on the second host"
echo "demo: on the second host: $(guest_size "$URI2")"

step "revert: back on the first host with the old flavor and disk"
set -x
vmflow server resize revert demo-vm --wait -c vm_state -c host -c flavor
{ set +x; } 2>/dev/null
wait_for_boot 5 "back on the first host"
echo "demo: on the first host: $(guest_size qemu:///system)"

step "resize again, then confirm: the first host's copy goes"
set -x
vmflow server resize demo-vm --flavor small --wait -c vm_state -c host -c flavor
{ set +x; } 2>/dev/null
wait_for_boot 1 "on the second host again"
set -x
vmflow server resize confirm demo-vm --wait -c vm_state -c host -c flavor
vmflow migration list --server demo-vm -c status -c source_host \
    -c dest_host -c old_flavor -c new_flavor
{ set +x; } 2>/dev/null
if virsh -c qemu:///system dominfo "vmflow-$demo_uuid" >/dev/null 2>&1; then
    echo "demo: the confirmed resize left demo-vm's domain on the first host" >&2
    exit 1
fi
echo "demo: on the second host: $(guest_size "$URI2"); none left on the first"

step "what happened: one action per operation, one event per step"
set -x
vmflow server event-list demo-vm -c action -c event -c duration -c result
{ set +x; } 2>/dev/null

step "the last operation's flow, drawn from the database (text and SVG)"
set -x
vmflow flow show --server demo-vm
vmflow flow show --server demo-vm --format svg -o "$DEMO/last-operation.svg"
{ set +x; } 2>/dev/null

step "delete, and check nothing is left (vmflow audit)"
set -x
vmflow server delete demo-vm --wait
vmflow server list --deleted
vmflow audit
{ set +x; } 2>/dev/null
demo_uuid=

step "stop the second libvirtd and the sshd"
bash tools/testbed/stop-second-libvirtd.sh "$HV2"
bash tools/testbed/stop-sshd.sh "$SSHD"
echo "demo: done in $((SECONDS - demo_start)) s"
