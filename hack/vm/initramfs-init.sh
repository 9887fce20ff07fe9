#!/bin/busybox sh
# /init of the testbed guest's initramfs. Mounts the host's / (9p, read-only) as the lower layer
# of an overlay on tmpfs, so the guest writes anywhere without touching the host, then hands
# over to the script that vdpatb.init= names on the kernel command line (hack/vm/guest.sh).
/bin/busybox --install -s /bin

fail() {
  echo "initramfs: $*"
  echo o >/proc/sysrq-trigger
  sleep 30
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in netfs 9pnet 9pnet_virtio 9p overlay; do insmod "/modules/$m.ko" || fail "cannot load $m"; done

mkdir -p /lower /rw
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /lower ||
  fail "cannot mount the host's / (9p tag hostroot)"
mount -t tmpfs -o mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
  fail "cannot mount the overlay root"

init=
for arg in $(cat /proc/cmdline); do
  case $arg in vdpatb.init=*) init=${arg#*=} ;; esac
done
[ -x "/newroot$init" ] || fail "vdpatb.init='$init' is not an executable on the host's /"

for m in proc sys dev; do mount --move "/$m" "/newroot/$m"; done
exec switch_root /newroot "$init"
