#!/usr/bin/env bash
# Build the tiny test guest: Debian's cloud kernel + two busybox initramfs.
#
# Outputs in OUTDIR (default: .testbed/guest in the repository):
#   vmlinuz            the kernel (direct kernel boot, cmdline "console=ttyS0")
#   initrd-acpi.img    init loads evdev + button, powers off on the ACPI power button
#   initrd-noacpi.img  init ignores ACPI (no button module) and sleeps for ever
#   disk.qcow2         a small empty qcow2 image (64M) to use as an image disk
#   guest.env, guest.json   manifest: paths, kernel version, boot marker
# Both initrds print "VMFLOW-GUEST-BOOTED <variant>" (variant: acpi or noacpi)
# on the serial console (ttyS0) once init runs.
#
# Cached: when the outputs exist and were built by this version of the script,
# nothing is done. The kernel .deb is kept in OUTDIR/cache, so a rebuild after
# a change of this script downloads nothing.
#
# Usage: tools/testbed/build-guest.sh [OUTDIR]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SCRIPT="$(realpath "${BASH_SOURCE[0]}")"
MARKER="VMFLOW-GUEST-BOOTED"
KERNEL_META=linux-image-cloud-amd64
DISK_SIZE=64M

die() { echo "build-guest: error: $*" >&2; exit 1; }
log() { echo "build-guest: $*"; }

OUTDIR="${1:-$REPO_ROOT/.testbed/guest}"
mkdir -p "$OUTDIR"
OUTDIR="$(realpath "$OUTDIR")"
RECIPE="$(sha256sum "$SCRIPT" | cut -d' ' -f1)"

built_by_this_recipe() {
    local f
    for f in vmlinuz initrd-acpi.img initrd-noacpi.img disk.qcow2 guest.env guest.json; do
        [[ -s $OUTDIR/$f ]] || return 1
    done
    grep -qxF "GUEST_RECIPE=$RECIPE" "$OUTDIR/guest.env"
}

if built_by_this_recipe; then
    log "up to date in $OUTDIR"
    exit 0
fi

for cmd in apt-get apt-cache dpkg-deb cpio gzip qemu-img flock; do
    command -v "$cmd" >/dev/null || die "$cmd not found: run tools/testbed/install-packages.sh first"
done
BUSYBOX=/bin/busybox
[[ -x $BUSYBOX ]] || die "$BUSYBOX not found: install busybox-static"
# ldd fails on a static executable
ldd "$BUSYBOX" >/dev/null 2>&1 && die "$BUSYBOX is dynamically linked: install busybox-static, not busybox"

# one builder at a time per OUTDIR (parallel test sessions)
exec 9>"$OUTDIR/.lock"
flock -w 600 9 || die "timed out waiting for $OUTDIR/.lock"
if built_by_this_recipe; then
    log "up to date in $OUTDIR (built by a concurrent run)"
    exit 0
fi

WORK="$(mktemp -d "$OUTDIR/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# --- kernel package -------------------------------------------------------------
kernel_package() {
    apt-cache depends "$KERNEL_META" 2>/dev/null \
        | awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-cloud-amd64$/ && !found {print $2; found = 1}'
}
pkg="$(kernel_package)"
if [[ -z $pkg ]]; then
    log "no $KERNEL_META in the package lists, running apt-get update"
    apt-get update -qq || die "apt-get update failed"
    pkg="$(kernel_package)"
fi
[[ -n $pkg ]] || die "apt-cache depends $KERNEL_META names no linux-image-*-cloud-amd64 package"

# apt-get download writes into the current directory; as root, without the
# _apt sandbox (it could not write there)
download() {
    (cd "$WORK" && apt-get download -q -o APT::Sandbox::User=root "$pkg") >"$WORK/download.log" 2>&1
}

mkdir -p "$OUTDIR/cache"
shopt -s nullglob
debs=("$OUTDIR/cache/${pkg}_"*.deb)
if ((${#debs[@]} == 0)); then
    log "downloading $pkg"
    if ! download; then
        # stale package lists name a kernel the mirror no longer has
        log "download failed, refreshing package lists and retrying"
        apt-get update -qq || die "apt-get update failed"
        pkg="$(kernel_package)"
        [[ -n $pkg ]] || die "apt-cache depends $KERNEL_META names no linux-image-*-cloud-amd64 package"
        download || { cat "$WORK/download.log" >&2; die "apt-get download $pkg failed"; }
    fi
    debs=("$WORK/${pkg}_"*.deb)
    ((${#debs[@]} == 1)) || die "apt-get download $pkg produced no .deb"
    rm -f "$OUTDIR/cache/"linux-image-*.deb   # keep only the current kernel
    mv "${debs[0]}" "$OUTDIR/cache/"
    debs=("$OUTDIR/cache/${pkg}_"*.deb)
fi
KVER="${pkg#linux-image-}"
log "extracting $(basename "${debs[0]}")"
dpkg-deb -x "${debs[0]}" "$WORK/kernel"
[[ -s $WORK/kernel/boot/vmlinuz-$KVER ]] || die "no boot/vmlinuz-$KVER in ${debs[0]}"
MODDIR="$WORK/kernel/lib/modules/$KVER"
[[ -d $MODDIR ]] || die "no lib/modules/$KVER in ${debs[0]}"

# --- kernel modules ---------------------------------------------------------------
# add_module NAME DESTDIR: copy NAME (and the modules it depends on, first) into
# DESTDIR uncompressed, appending to DESTDIR/load-order; busybox's insmod
# cannot load compressed modules.
add_module() {
    local name="$1" dest="$2" file dep deps
    grep -qxF "$name.ko" "$dest/load-order" 2>/dev/null && return 0
    file="$(find "$MODDIR/kernel" \( -name "$name.ko" -o -name "$name.ko.*" \) -print -quit)"
    if [[ -z $file ]]; then
        file="$(find "$MODDIR/kernel" \( -name "${name//_/-}.ko" -o -name "${name//_/-}.ko.*" \) -print -quit)"
    fi
    [[ -n $file ]] || die "kernel module $name not found in $pkg"
    case "$file" in
        *.ko) cp "$file" "$dest/$name.ko" ;;
        *.ko.xz) xz -dc "$file" >"$dest/$name.ko" ;;
        *.ko.zst) zstd -qdc "$file" >"$dest/$name.ko" ;;
        *.ko.gz) gzip -dc "$file" >"$dest/$name.ko" ;;
        *) die "unknown module compression: $file" ;;
    esac
    deps="$(grep -ao 'depends=[A-Za-z0-9_,-]*' "$dest/$name.ko" | head -n 1 | cut -d= -f2 || true)"
    for dep in ${deps//,/ }; do
        add_module "$dep" "$dest"
    done
    echo "$name.ko" >>"$dest/load-order"
}

# --- initramfs ----------------------------------------------------------------------
# The /init scripts; a quoted heredoc, so nothing is interpolated here.
write_init_common() {
    cat <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
# quieten the kernel so the marker line stays whole
echo 1 >/proc/sys/kernel/printk
EOF
}

write_init_acpi() {
    write_init_common
    cat <<'EOF'
for m in $(cat /lib/modules/load-order); do
    insmod "/lib/modules/$m" || echo "vmflow-guest: insmod $m failed"
done
# wait (at most 10 s) for the power button input device(s) under /dev/input
buttons=
i=0
while [ -z "$buttons" ] && [ $i -lt 100 ]; do
    for dev in /sys/class/input/event*; do
        if grep -q 'Power Button' "$dev/device/name" 2>/dev/null && [ -e "/dev/input/${dev##*/}" ]; then
            buttons="$buttons /dev/input/${dev##*/}"
        fi
    done
    [ -n "$buttons" ] || sleep 0.1
    i=$((i + 1))
done
[ -n "$buttons" ] || echo "vmflow-guest: no power button input device, ACPI shutdown will not work"
# one listener per button: the first event read powers the guest off
for button in $buttons; do
    # evdev reads whole events (24 bytes each), never a single byte
    (if dd if="$button" of=/dev/null bs=64 count=1 2>/dev/null; then
         echo "vmflow-guest: power button pressed, powering off"
         poweroff -f
     else
         echo "vmflow-guest: cannot read $button"
     fi) &
done
sleep 0.2  # let the listeners open their devices before announcing readiness
echo
echo "VMFLOW-GUEST-BOOTED acpi"
while true; do sleep 3600; done
EOF
}

write_init_noacpi() {
    write_init_common
    cat <<'EOF'
echo
echo "VMFLOW-GUEST-BOOTED noacpi"
# no button module: ACPI power button presses are ignored
while true; do sleep 3600; done
EOF
}

# build_initrd VARIANT: pack $WORK/initrd-VARIANT.img
build_initrd() {
    local variant="$1" root="$WORK/root-$1"
    mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
    cp "$BUSYBOX" "$root/bin/busybox"
    # the kernel needs /dev/console to give init a console; devtmpfs provides
    # it later, so not being allowed to mknod here is not fatal
    mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
    : >"$root/lib/modules/load-order"
    if [[ $variant == acpi ]]; then
        add_module evdev "$root/lib/modules"
        add_module button "$root/lib/modules"
        write_init_acpi >"$root/init"
    else
        write_init_noacpi >"$root/init"
    fi
    chmod 755 "$root/init"
    (cd "$root" && find . -print0 | LC_ALL=C sort -z \
        | cpio --null -o -H newc -R 0:0 --quiet | gzip -9 -n) >"$WORK/initrd-$variant.img"
}

log "building initramfs images for kernel $KVER"
build_initrd acpi
build_initrd noacpi
cp "$WORK/kernel/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
qemu-img create -q -f qcow2 "$WORK/disk.qcow2" "$DISK_SIZE" || die "qemu-img create failed"

cat >"$WORK/guest.env" <<EOF
GUEST_KERNEL=$OUTDIR/vmlinuz
GUEST_INITRD_ACPI=$OUTDIR/initrd-acpi.img
GUEST_INITRD_NOACPI=$OUTDIR/initrd-noacpi.img
GUEST_DISK=$OUTDIR/disk.qcow2
GUEST_CMDLINE=console=ttyS0
GUEST_MARKER=$MARKER
GUEST_KERNEL_VERSION=$KVER
GUEST_RECIPE=$RECIPE
EOF
python3 - "$WORK/guest.env" >"$WORK/guest.json" <<'EOF'
import json, sys
env = dict(line.rstrip("\n").split("=", 1) for line in open(sys.argv[1]) if "=" in line)
print(json.dumps({
    "kernel": env["GUEST_KERNEL"],
    "initrd_acpi": env["GUEST_INITRD_ACPI"],
    "initrd_noacpi": env["GUEST_INITRD_NOACPI"],
    "disk": env["GUEST_DISK"],
    "cmdline": env["GUEST_CMDLINE"],
    "marker": env["GUEST_MARKER"],
    "kernel_version": env["GUEST_KERNEL_VERSION"],
    "recipe": env["GUEST_RECIPE"],
}, indent=2))
EOF

# readable by QEMU running as libvirt-qemu
chmod 644 "$WORK"/{vmlinuz,initrd-acpi.img,initrd-noacpi.img,disk.qcow2,guest.env,guest.json}
# guest.env last: it is what marks the build complete
for f in vmlinuz initrd-acpi.img initrd-noacpi.img disk.qcow2 guest.json guest.env; do
    mv -f "$WORK/$f" "$OUTDIR/$f"
done
log "built in $OUTDIR (kernel $KVER)"
