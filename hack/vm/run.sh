#!/usr/bin/env bash
# Runs the kernel vDPA testbed: prepares the kernel, modules and initramfs (cached), bundles the
# guest suites (test/vm/guest/*.vm.ts), boots qemu (TCG) with the host's / as the guest's root,
# and reports what the guest suites reported.
#
#   hack/vm/run.sh [results dir [suite name substring…]]
#
# The results directory (new or empty; default: one under $VDPA_VM_WORKDIR/runs) receives per guest
# suite <name>.out and <name>.rc, plus console.log, dmesg.txt, kernel, and "done" once the guest
# finished every suite. Exit 0 only when the guest finished and every suite exited 0.
#   VDPA_VM_TIMEOUT        seconds the whole guest run may take (default 900)
#   VDPA_VM_SUITE_TIMEOUT  seconds one guest suite may take (default 300)
#   VDPA_VM_MEMORY         guest memory in MiB (default 2048)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

results=${1:-$VM_WORKDIR/runs/run-$$}
mkdir -p "$results"
results=$(cd "$results" && pwd)
[[ -z $(ls -A "$results") ]] || die "the results directory $results is not empty"

t0=$EPOCHREALTIME
K=$(bash "$VM_REPO/hack/vm/prepare.sh" | tail -n1)
KREL=$(basename "$(ls -d "$K"/root/lib/modules/*/)")
INITRD=$(ls "$K"/initramfs-*.cpio.gz)
log "kernel $KREL ready in $(since "$t0") s"

# The guest reads the bundles through the host's /; next to the repo so node_modules resolve.
bundle=$VM_REPO/.test-build/vm-$$
trap 'rm -rf "$bundle"' EXIT
node "$VM_REPO/hack/vm/bundle.mjs" "$bundle" "${@:2}"

# vp_vdpa functions: virtio-net-pci devices on one qemu hub, so traffic sent through one
# reaches the others and never leaves qemu.
nics=()
for slot in 6 7 8 9; do
  nics+=(-netdev "hubport,id=hp$slot,hubid=1"
    -device "virtio-net-pci,netdev=hp$slot,addr=0x$slot,mac=52:54:00:12:34:0$slot,romfile=")
done

t1=$EPOCHREALTIME
log "booting the guest (TCG, $(nproc) vCPUs)"
status=0
timeout --kill-after=10 "${VDPA_VM_TIMEOUT:-900}" qemu-system-x86_64 \
  -nodefaults -display none -no-reboot -serial stdio \
  -accel tcg -cpu max -smp "$(nproc)" -m "${VDPA_VM_MEMORY:-2048}" \
  -kernel "$K/root/boot/vmlinuz-$KREL" -initrd "$INITRD" \
  -append "console=ttyS0 quiet panic=-1 vdpatb.init=$VM_REPO/hack/vm/guest.sh vdpatb.modules=$K/root vdpatb.suites=$bundle/test/vm/guest vdpatb.timeout=${VDPA_VM_SUITE_TIMEOUT:-300}" \
  -fsdev "local,id=hostroot,path=/,security_model=passthrough,readonly=on,multidevs=remap" \
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
  -fsdev "local,id=results,path=$results,security_model=passthrough" \
  -device virtio-9p-pci,fsdev=results,mount_tag=results \
  "${nics[@]}" </dev/null 2>&1 | tee "$results/console.log" || status=$?
log "guest ran for $(since "$t1") s"

if ((status == 124)); then
  log "the guest did not finish within ${VDPA_VM_TIMEOUT:-900} s"
  exit 1
fi
[[ -f $results/done ]] || die "the guest stopped before finishing its suites (qemu exit $status); see $results/console.log"
failed=0
for rc in "$results"/*.rc; do
  [[ $(<"$rc") == 0 ]] || {
    log "guest suite $(basename "$rc" .rc) exited $(<"$rc")"
    failed=1
  }
done
exit $failed
