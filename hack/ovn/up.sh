#!/usr/bin/env bash
# Starts a real OVS + OVN on this machine for the tests: OVS on its userspace datapath (no
# kernel module needed), a local NB/SB + northd, and ovn-controller bound to br-int. Idempotent
# and safe to run concurrently: daemons already running are reused, and a lock serialises
# concurrent callers. Installs the Debian packages it needs when missing.
#   hack/ovn/up.sh            bring everything up
#   hack/ovn/up.sh --help
set -euo pipefail

if [[ ${1:-} == --help || ${1:-} == -h ]]; then
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
if ((EUID != 0)); then
  echo "ovn-up: must run as root" >&2
  exit 1
fi

OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
OVN_CTL=/usr/share/ovn/scripts/ovn-ctl
SB_SOCK=/var/run/ovn/ovnsb_db.sock
NB_SOCK=/var/run/ovn/ovnnb_db.sock
BRIDGE=br-int

exec 9>/run/vdpa-k8s-ovn-up.lock
flock 9

source "$(dirname "$0")/../lib/packages.sh"
ensure_packages ovn-up openvswitch-switch ovn-central ovn-host iproute2 iputils-ping

log=$(mktemp)
trap 'rm -f "$log"' EXIT
quiet() { # run a start command; show its output only when it fails
  # 9>&-: the daemons it starts must not inherit (and so hold forever) the lock.
  if ! "$@" >"$log" 2>&1 9>&-; then
    cat "$log" >&2
    echo "ovn-up: failed: $*" >&2
    exit 1
  fi
}

# ovs-ctl and ovn-ctl start only what is not running yet.
if ! "$OVS_CTL" status >/dev/null 2>&1; then
  quiet "$OVS_CTL" --system-id=random --no-monitor start
fi
if ! "$OVN_CTL" status_northd >/dev/null 2>&1 || [[ ! -S $SB_SOCK || ! -S $NB_SOCK ]]; then
  quiet "$OVN_CTL" start_northd
fi

ovs-vsctl --timeout=10 set Open_vSwitch . \
  external_ids:ovn-remote="unix:$SB_SOCK" \
  external_ids:ovn-encap-type=geneve \
  external_ids:ovn-encap-ip=127.0.0.1 \
  external_ids:ovn-bridge-datapath-type=netdev
# No kernel datapath here: br-int runs on OVS's userspace datapath.
ovs-vsctl --timeout=10 --may-exist add-br "$BRIDGE" \
  -- set Bridge "$BRIDGE" datapath_type=netdev fail-mode=secure

if ! "$OVN_CTL" status_controller >/dev/null 2>&1; then
  quiet "$OVN_CTL" start_controller
fi

# Ready means the chassis registered in the southbound DB; port bindings depend on it.
chassis=$(ovs-vsctl --timeout=10 get Open_vSwitch . external_ids:system-id | tr -d '"')
for _ in $(seq 100); do
  if ovn-sbctl --db="unix:$SB_SOCK" --timeout=5 --bare --columns=name find Chassis "name=$chassis" 2>/dev/null | grep -q .; then
    exit 0
  fi
  sleep 0.1
done
echo "ovn-up: ovn-controller did not register chassis $chassis in the southbound DB" >&2
exit 1
