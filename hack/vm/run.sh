#!/usr/bin/env bash
# Runs the kernel vDPA testbed: prepares the kernel, modules and initramfs (cached), bundles the
# guest suites (test/vm/guest/*.vm.ts), and boots one qemu guest (TCG) per suite with the host's
# / as its root, so that a suite that wrecks or crashes its kernel cannot touch the next one.
#
#   hack/vm/run.sh [results dir [suite name substring…]]
#
# The results directory (new or empty; default: one under $VDPA_VM_WORKDIR/runs) receives the
# kernel release (kernel) and, per guest suite, <suite>.out and <suite>.rc (written by the guest
# when the suite ends), <suite>.console.log, <suite>.dmesg, and <suite>.ps when it ran out of
# time (what each process waited on). Exit 0 only when every suite ran to its end and exited 0.
#   VDPA_VM_SUITE_TIMEOUT  seconds one guest (boot, suite, power-off) may take (default 240)
#   VDPA_VM_TIMEOUT        seconds all guests together may take; suites past it do not run (default 840: the boot-replay test takes two guests)
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

suite_timeout=${VDPA_VM_SUITE_TIMEOUT:-240}
deadline=$((SECONDS + ${VDPA_VM_TIMEOUT:-840}))
failed=0
for suite in "$bundle"/test/vm/guest/*.mjs; do
  name=$(basename "$suite" .mjs)
  left=$((deadline - SECONDS))
  if ((left < 30)); then
    log "$name: not run, the testbed's time (${VDPA_VM_TIMEOUT:-840} s) is used up"
    failed=1
    continue
  fi
  t1=$EPOCHREALTIME
  log "$name: booting a guest (TCG, $(nproc) vCPUs)"
  status=0
  vm_timeout=$((left < suite_timeout ? left : suite_timeout))
  # The suite's own limit leaves time to boot, to log a hang and to power off.
  timeout --kill-after=10 "$vm_timeout" qemu-system-x86_64 \
    -nodefaults -display none -no-reboot -serial stdio \
    -accel tcg -cpu max -smp "$(nproc)" -m "${VDPA_VM_MEMORY:-2048}" \
    -kernel "$K/root/boot/vmlinuz-$KREL" -initrd "$INITRD" \
    -append "console=ttyS0 quiet panic=-1 vdpatb.init=$VM_REPO/hack/vm/guest.sh vdpatb.modules=$K/root vdpatb.suite=$suite vdpatb.timeout=$((vm_timeout - 45))" \
    -fsdev "local,id=hostroot,path=/,security_model=passthrough,readonly=on,multidevs=remap" \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    -fsdev "local,id=results,path=$results,security_model=passthrough" \
    -device virtio-9p-pci,fsdev=results,mount_tag=results \
    "${nics[@]}" </dev/null 2>&1 | tee "$results/$name.console.log" || status=$?
  if [[ ! -f $results/$name.rc ]]; then
    log "$name: the guest stopped before the suite ended ($( ((status == 124)) && echo "timed out after $vm_timeout s" || echo "qemu exit $status")); see $results/$name.console.log"
    failed=1
  elif [[ $(<"$results/$name.rc") != 0 ]]; then
    log "$name: exited $(<"$results/$name.rc")"
    failed=1
  fi
  log "$name: guest ran for $(since "$t1") s"
done
exit $failed
