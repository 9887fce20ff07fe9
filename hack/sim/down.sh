#!/usr/bin/env bash
# Takes the simulated node down again: stops a device plugin a crashed demo left running, deletes
# the pods' network namespaces, the representors' OVS ports, the logical switch "vdpa-sim" with its
# ports, the veth pairs and /run/vdpa-k8s-sim, then stops the OVS/OVN daemons that hack/sim/up.sh
# started (those that were running before are left running). Idempotent.
#   hack/sim/down.sh                 take everything down
#   hack/sim/down.sh --keep-daemons  leave OVS/OVN running (test suites share them)
set -euo pipefail
cd "$(dirname "$0")/../.."

keep_daemons=false
case ${1:-} in
--help | -h)
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
  ;;
--keep-daemons) keep_daemons=true ;;
'') ;;
*)
  echo "sim-down: unknown argument $1; see --help" >&2
  exit 2
  ;;
esac
if ((EUID != 0)); then
  echo "sim-down: must run as root" >&2
  exit 1
fi

SIM=/run/vdpa-k8s-sim
LS=vdpa-sim
VFS=4

exec 8>"$SIM.lock"
flock 8

# The flow records the device plugin it started; a crashed run may have left it behind.
if [[ -f $SIM/plugin.pid ]]; then
  pid=$(cat "$SIM/plugin.pid")
  if [[ $pid =~ ^[0-9]+$ ]] && grep -qs vdpa-device-plugin "/proc/$pid/cmdline"; then
    kill "$pid" 2>/dev/null || true
  fi
fi
for ns in $(ip netns list | awk '$1 ~ /^vdpa-sim-/ {print $1}'); do
  ip netns del "$ns"
done
if /usr/share/openvswitch/scripts/ovs-ctl status >/dev/null 2>&1; then
  args=()
  for ((i = 0; i < VFS; i++)); do args+=(-- --if-exists del-port "simrep$i"); done
  ovs-vsctl --timeout=10 "${args[@]}"
fi
if [[ -S /var/run/ovn/ovnnb_db.sock ]]; then
  ovn-nbctl --timeout=10 --if-exists ls-del "$LS"
fi
for ((i = 0; i < VFS; i++)); do
  ip link del "simvf$i" 2>/dev/null || ip link del "simrep$i" 2>/dev/null || true
done

started=$(cat "$SIM/started-daemons" 2>/dev/null || true)
rm -rf "$SIM"
rm -f "$SIM.lock"
if ! $keep_daemons; then
  [[ $started == *controller* ]] && /usr/share/ovn/scripts/ovn-ctl stop_controller >/dev/null 2>&1 8>&- || true
  [[ $started == *northd* ]] && /usr/share/ovn/scripts/ovn-ctl stop_northd >/dev/null 2>&1 8>&- || true
  [[ $started == *ovs* ]] && /usr/share/openvswitch/scripts/ovs-ctl stop >/dev/null 2>&1 8>&- || true
fi
echo "sim-down: simulated node removed"
