#!/bin/bash
# PID 1 of the testbed guest, started by the initramfs on an overlay of the host's /.
# Loads the vDPA, netdevsim and OVS modules of the booted kernel, runs one bundled guest suite
# with node, and writes its output, exit code and the kernel log to the results share (9p tag
# "results"), then powers off. Parameters come from the kernel command line:
#   vdpatb.modules=<dir holding lib/modules/<release>>  vdpatb.suite=<bundled suite, *.mjs>
#   vdpatb.timeout=<seconds the suite may take>
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
umask 022

param() {
  local a
  for a in $(</proc/cmdline); do
    [[ $a == "vdpatb.$1="* ]] && echo "${a#*=}"
  done
}

suite=$(param suite)
name=$(basename "$suite" .mjs)

finish() {
  dmesg >"/results/$name.dmesg" 2>/dev/null
  sync
  echo o >/proc/sysrq-trigger
  sleep 30
}
trap finish EXIT

# The host's pid files and sockets would be stale here. /tmp stays: the overlay makes it
# writable, and the repository (a CI checkout may live there) must stay visible.
mount -t tmpfs -o mode=0755 run /run
mkdir -p /dev/pts /dev/shm /results
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
mount -t 9p -o trans=virtio,version=9p2000.L results /results || {
  echo "guest: cannot mount the results share" >&2
  exit 1
}
hostname vdpa-testbed
ip link set lo up

release=$(uname -r)
mkdir -p "/lib/modules/$release"
mount --bind "$(param modules)/lib/modules/$release" "/lib/modules/$release"
echo "$release" >/results/kernel
if ! modprobe -a virtio_net vdpa virtio_vdpa vhost_vdpa vdpa_sim_net vp_vdpa netdevsim openvswitch; then
  echo "guest: loading the kernel modules failed" >&2
  exit 1
fi

export NO_COLOR=1 FORCE_COLOR=0 VDPA_TESTBED=1
echo "guest: === $name"
start=$EPOCHREALTIME
limit=$(param timeout)
# Just before the suite's time is up, log what every process waits on, kernel and user side.
(
  sleep $((limit - 5))
  echo w >/proc/sysrq-trigger
  ps -eo pid,ppid,stat,etimes,wchan:32,args >/results/$name.ps
) &
watchdog=$!
timeout --kill-after=10 "$limit" node --enable-source-maps "$suite" </dev/null 2>&1 | tee "/results/$name.out"
rc=${PIPESTATUS[0]}
kill "$watchdog" 2>/dev/null
echo "$rc" >"/results/$name.rc"
echo "guest: $name exited $rc after $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
