#!/usr/bin/env bash
# Stops the OVN and OVS daemons that hack/ovn/up.sh started (controller, northd + NB/SB, OVS).
# The databases stay on disk, so a later up.sh brings back the same bridge and chassis.
# Never called by test suites: other suites may be using OVN at the same time.
set -euo pipefail
if [[ ${1:-} == --help || ${1:-} == -h ]]; then
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
if ((EUID != 0)); then
  echo "ovn-down: must run as root" >&2
  exit 1
fi
exec 9>/run/vdpa-k8s-ovn-up.lock
flock 9
/usr/share/ovn/scripts/ovn-ctl stop_controller >/dev/null 2>&1 9>&- || true
/usr/share/ovn/scripts/ovn-ctl stop_northd >/dev/null 2>&1 9>&- || true
/usr/share/openvswitch/scripts/ovs-ctl stop >/dev/null 2>&1 9>&- || true
