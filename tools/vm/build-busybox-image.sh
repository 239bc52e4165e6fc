#!/bin/sh
# A tiny bootable VM disk for the libvirt runtime's real-KVM test, built offline from Debian packages.
#
# No cloud image can be downloaded here, so the cheapest thing that really boots is: Debian's cloud
# kernel (taken out of its .deb, not installed), a busybox initramfs whose /init prints a marker on
# the serial console and stays up, and SYSLINUX on a FAT "superfloppy" disk so SeaBIOS boots it from
# the VM's first disk like any image.  Output: a qcow2 (the runtime puts a copy-on-write overlay on
# it, which internal snapshots need).  ~35 MB, built in a few seconds.
#
#   tools/vm/build-busybox-image.sh OUTPUT.qcow2
#
# Needs (Debian): busybox-static cpio syslinux syslinux-common mtools dosfstools qemu-utils, and
# apt access to Debian's archive for linux-image-*-cloud-amd64 (downloaded with apt-get download).
set -eu
out=${1:?usage: $0 OUTPUT.qcow2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# The kernel: the newest cloud-amd64 kernel package, unpacked (the host's /boot is not touched).
pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
apt-get download -q "$pkg" >/dev/null 2>&1 || { echo "cannot download $pkg (apt-get update?)" >&2; exit 1; }
dpkg-deb -x ./*.deb kernel
cp kernel/boot/vmlinuz-* vmlinuz

# The initramfs: static busybox and an /init that says it booted, then keeps saying it is alive.
mkdir -p root/bin root/proc root/sys root/dev root/tmp root/etc/acpi/PWRF root/var/log root/var/run root/lib/modules
cp /bin/busybox root/bin/busybox
# The ACPI power button (libvirt's shutdown, and its reboot, which is a shutdown it starts again) powers off.
# The kernel reports the button only through its modules "button" (the ACPI button as an input device)
# and "evdev" (/dev/input/event*, which busybox acpid reads): both go into the initramfs.
for m in drivers/acpi/button drivers/input/evdev; do
    ko=$(find kernel/lib/modules -path "*/kernel/$m.ko*" | head -n 1)
    [ -n "$ko" ] || { echo "no $m module in $pkg" >&2; exit 1; }
    case $ko in
        *.ko) cp "$ko" root/lib/modules/ ;;
        *.ko.xz) xz -dc "$ko" > "root/lib/modules/$(basename "$m").ko" ;;
        *.ko.zst) zstd -qdc "$ko" > "root/lib/modules/$(basename "$m").ko" ;;
        *) echo "cannot unpack $ko" >&2; exit 1 ;;
    esac
done
printf '#!/bin/sh\necho "arktos-test-guest: ACPI power button: powering off" > /dev/console\nexec poweroff -f\n' \
    > root/etc/acpi/PWRF/00000080
chmod 755 root/etc/acpi/PWRF/00000080
cat > root/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
insmod /lib/modules/button.ko
insmod /lib/modules/evdev.ko
acpid -c /etc/acpi -l /var/log/acpid.log
echo "arktos-test-guest: booted, kernel $(uname -r)"
n=0
while true; do
    n=$((n + 1))
    echo "arktos-test-guest: alive $n, uptime $(cut -d' ' -f1 /proc/uptime)"
    sleep 2
done
INIT
chmod 755 root/init
(cd root && find . | cpio -o -H newc --quiet | gzip -9) > initrd.gz

# The disk: FAT with SYSLINUX in its boot sector, kernel and initramfs beside it.
cat > syslinux.cfg <<'CFG'
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=ttyS0,115200 panic=10
CFG
truncate -s 48M disk.raw
mkfs.vfat -n ARKTOSVM disk.raw >/dev/null
mcopy -i disk.raw vmlinuz initrd.gz syslinux.cfg ::/
syslinux --install disk.raw
qemu-img convert -q -f raw -O qcow2 disk.raw "$work/out.qcow2"
mv "$work/out.qcow2" "$out"
echo "$out: $(du -h "$out" | cut -f1), kernel $pkg"
