# Shared settings and helpers of the kernel vDPA testbed (sourced by the other hack/vm scripts).
#
#   VDPA_VM_WORKDIR  cache of kernels, module builds, initramfs and run results
#                    (default /var/tmp/vdpa-k8s-vm; outside the repo, kept between runs)
#   VDPA_VM_MIRROR   Debian mirror for bookworm-backports (default: the machine's own Debian mirror)

VM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VM_WORKDIR=${VDPA_VM_WORKDIR:-/var/tmp/vdpa-k8s-vm}
VM_APT=$VM_WORKDIR/apt

log() { echo "vm: $*" >&2; }
die() {
  echo "vm: error: $*" >&2
  exit 1
}

# The guest sees the host's / read-only and mounts its own filesystems over /proc, /sys, /dev
# and /run: a cache there would be invisible to it.
case $VM_WORKDIR in
  /*) ;;
  *) die "VDPA_VM_WORKDIR must be an absolute path (got '$VM_WORKDIR')" ;;
esac
case $VM_WORKDIR/ in
  /proc/* | /sys/* | /dev/* | /run/* | /var/run/*) die "VDPA_VM_WORKDIR must not be under /proc, /sys, /dev or /run (got '$VM_WORKDIR')" ;;
esac

source "$(dirname "${BASH_SOURCE[0]}")/../lib/packages.sh"

# The Debian mirror the machine already uses, so that a proxy or local mirror applies here too.
debian_mirror() {
  if [[ -n ${VDPA_VM_MIRROR:-} ]]; then
    echo "$VDPA_VM_MIRROR"
    return
  fi
  local uri
  uri=$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
    /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1 | tr -d ' ')
  echo "${uri:-http://deb.debian.org/debian}"
}

# apt-get / apt-cache on a private bookworm-backports source list, lists directory and cache:
# the machine's own apt configuration stays as it is.
vm_apt() {
  local tool=$1
  shift
  "$tool" -o Dir::Etc::sourcelist="$VM_APT/sources.list" -o Dir::Etc::sourceparts=- \
    -o Dir::State::Lists="$VM_APT/lists" -o Dir::Cache="$VM_APT/cache" \
    -o APT::Sandbox::User=root "$@"
}

vm_apt_update() {
  mkdir -p "$VM_APT/lists/partial" "$VM_APT/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) bookworm-backports main" \
    >"$VM_APT/sources.list"
  vm_apt apt-get update -qq
}

# Elapsed seconds since $1 (an EPOCHREALTIME value), one decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
