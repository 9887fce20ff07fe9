#!/usr/bin/env bash
# Prepares the kernel vDPA testbed, reusing whatever VDPA_VM_WORKDIR already holds:
#   1. Debian's newest bookworm-backports kernel (image, headers, kbuild, source), unpacked;
#   2. the modules Debian does not build (vringh + vdpa_sim + vdpa_sim_net, vp_vdpa, netdevsim),
#      built out of tree against those headers and added to the unpacked module tree;
#   3. a tiny initramfs that mounts the host's / over 9p and hands over to hack/vm/guest.sh.
# Logs go to stderr; the last line on stdout is the kernel directory that run.sh boots.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ensure_packages vm qemu-system-x86 busybox-static cpio kmod xz-utils make gcc-12 libc6-dev util-linux \
  debian-archive-keyring

mkdir -p "$VM_WORKDIR"
exec 9>"$VM_WORKDIR/.prepare.lock"
flock 9

# A cached step is redone when its recipe changes: this script, and /init for the initramfs.
RECIPE=$(sha256sum <"$0" | cut -c1-12)
INIT_RECIPE=$(cat "$0" "$VM_REPO/hack/vm/initramfs-init.sh" | sha256sum | cut -c1-12)

# Sets KABI (6.12.95+deb12): from apt-cache madison when the mirror answers, else the newest
# kernel already prepared here.
resolve_kernel() {
  KABI=
  if vm_apt_update 2>/dev/null; then
    local pkgver
    pkgver=$(vm_apt apt-cache madison linux-image-amd64 | awk -F'|' '$3 ~ /bookworm-backports/ { gsub(/ /, "", $2); print $2; exit }')
    [[ -n $pkgver ]] && KABI=$(vm_apt apt-cache show "linux-image-amd64=$pkgver" |
      sed -n 's/^Depends:.*linux-image-\([^ ,]*\)-amd64[ ,].*/\1/p' | head -n1)
  fi
  if [[ -z $KABI ]]; then
    local cached
    cached=$(find "$VM_WORKDIR" -maxdepth 2 -path '*/kernel-*/.modules' -printf '%h\n' | sort -V | tail -n1)
    [[ -n $cached ]] || die "bookworm-backports did not answer and no kernel is cached in $VM_WORKDIR"
    KABI=${cached##*/kernel-}
    log "bookworm-backports did not answer; using the cached kernel $KABI"
  fi
}

fetch_kernel() {
  [[ -f $K/.unpacked ]] && return
  local t0=$EPOCHREALTIME series=${KABI%.*}
  series=${series%%-*}
  log "fetching Debian's $KREL kernel, headers and linux-source-$series from bookworm-backports"
  rm -rf "$K" && mkdir -p "$K/debs"
  (cd "$K/debs" && vm_apt apt-get download -qq "linux-image-$KREL-unsigned" "linux-headers-$KREL" \
    "linux-headers-$KABI-common" "linux-kbuild-$KABI" "linux-source-$series" >/dev/null)
  local deb
  for deb in "$K"/debs/linux-{image,headers,kbuild}-*.deb; do dpkg -x "$deb" "$K/root"; done
  # The headers' Makefile includes the common headers by their installed path.
  sed -i "s#^include /usr/src/#include $K/root/usr/src/#" "$K/root/usr/src/linux-headers-$KREL/Makefile"
  mkdir -p "$K/src"
  dpkg-deb --fsys-tarfile "$K"/debs/linux-source-*.deb | tar -xO "./usr/src/linux-source-$series.tar.xz" |
    tar -xJ -C "$K/src" --strip-components=1 --wildcards \
      "linux-source-$series/drivers/vhost/*" "linux-source-$series/drivers/vdpa/*" \
      "linux-source-$series/drivers/net/netdevsim/*"
  rm -rf "$K/debs"
  touch "$K/.unpacked"
  log "kernel fetched and unpacked in $(since "$t0") s"
}

# build_module <kernel source directory> <make settings…>: builds with the directory's own Makefile.
build_module() {
  local dir=$K/build/${1##*/}
  make -s -C "$K/root/usr/src/linux-headers-$KREL" M="$dir" -j"$(nproc)" \
    "${@:2}" CONFIG_DEBUG_INFO_BTF_MODULES= modules >&2 # no pahole here, so no BTF
  install -m 0644 "$dir"/*.ko "$K/root/lib/modules/$KREL/extra/"
  # The guest reads them over 9p: leave the debug info behind.
  strip --strip-debug "$K/root/lib/modules/$KREL/extra"/*.ko
}

build_modules() {
  [[ -f $K/.modules && $(cat "$K/.modules") == "$RECIPE" ]] && return
  local t0=$EPOCHREALTIME d
  log "building vringh, vdpa_sim, vdpa_sim_net, vp_vdpa and netdevsim out of tree"
  rm -rf "$K/build" "$K/root/lib/modules/$KREL/extra"
  mkdir -p "$K/build" "$K/root/lib/modules/$KREL/extra"
  for d in vdpa/vdpa_sim vdpa/virtio_pci net/netdevsim; do cp -r "$K/src/drivers/$d" "$K/build/"; done
  # Debian leaves CONFIG_VHOST_RING unset, and vdpa_sim needs vringh: build it alongside.
  cp "$K/src/drivers/vhost/vringh.c" "$K/build/vdpa_sim/"
  echo 'obj-$(CONFIG_VHOST_RING) += vringh.o' >>"$K/build/vdpa_sim/Makefile"
  build_module vdpa_sim CONFIG_VHOST_RING=m CONFIG_VDPA_SIM=m CONFIG_VDPA_SIM_NET=m
  build_module virtio_pci CONFIG_VP_VDPA=m
  build_module netdevsim CONFIG_NETDEVSIM=m
  depmod -b "$K/root" "$KREL"
  echo "$RECIPE" >"$K/.modules"
  log "modules built in $(since "$t0") s"
}

build_initramfs() {
  INITRD=$K/initramfs-$INIT_RECIPE.cpio.gz
  [[ -f $INITRD ]] && return
  local t0=$EPOCHREALTIME tmp=$K/initramfs.tmp m
  rm -rf "$tmp" "$K"/initramfs-*.cpio.gz && mkdir -p "$tmp"/{bin,proc,sys,dev,newroot,modules}
  install -m 0755 /bin/busybox "$tmp/bin/busybox"
  install -m 0755 "$VM_REPO/hack/vm/initramfs-init.sh" "$tmp/init"
  # In load order; busybox's insmod takes uncompressed modules only.
  for m in fs/netfs/netfs net/9p/9pnet net/9p/9pnet_virtio fs/9p/9p fs/overlayfs/overlay; do
    xz -dc "$K/root/lib/modules/$KREL/kernel/$m.ko.xz" >"$tmp/modules/${m##*/}.ko"
  done
  (cd "$tmp" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$INITRD.part"
  mv "$INITRD.part" "$INITRD"
  rm -rf "$tmp"
  log "initramfs built in $(since "$t0") s"
}

resolve_kernel
KREL=$KABI-amd64
K=$VM_WORKDIR/kernel-$KABI
fetch_kernel
build_modules
build_initramfs
# Older kernels are of no further use once this one is ready.
find "$VM_WORKDIR" -maxdepth 1 -name 'kernel-*' ! -path "$K" -exec rm -rf {} +
echo "$K"
