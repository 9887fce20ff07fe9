#!/usr/bin/env bash
# Brings up a simulated vDPA node on this machine (Debian 12, root): a ConnectX-style PF with four
# vDPA VFs (two virtio, two vhost) as a fixture sysfs tree under /run/vdpa-k8s-sim, each VF's
# virtio netdev and representor the two ends of a real veth pair (simvfN / simrepN), real OVS +
# OVN with br-int (hack/ovn/up.sh), and the logical switch "vdpa-sim" for the pods. Installs the
# Debian packages it needs when missing. Idempotent: what is already up is kept.
#   hack/sim/up.sh            bring the node up (hack/sim/down.sh takes it down)
#   hack/sim/up.sh --help
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ ${1:-} == --help || ${1:-} == -h ]]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
if ((EUID != 0)); then
  echo "sim-up: must run as root" >&2
  exit 1
fi

SIM=/run/vdpa-k8s-sim
LS=vdpa-sim
SUBNET=10.56.0.0/24
VFS=4

exec 8>"$SIM.lock"
flock 8

# hack/ovn/up.sh installs OVS/OVN and iproute2; the pods' addresses need Debian's static IPAM plugin.
source hack/lib/packages.sh
ensure_packages sim-up containernetworking-plugins
if [[ ! -x node_modules/.bin/esbuild ]]; then
  echo "sim-up: node_modules is missing; run npm ci first" >&2
  exit 1
fi

mkdir -p "$SIM"
# Remembered once, at the first up: down.sh stops only the daemons this script started.
if [[ ! -f $SIM/started-daemons ]]; then
  started=()
  /usr/share/openvswitch/scripts/ovs-ctl status >/dev/null 2>&1 || started+=(ovs)
  /usr/share/ovn/scripts/ovn-ctl status_northd >/dev/null 2>&1 || started+=(northd)
  /usr/share/ovn/scripts/ovn-ctl status_controller >/dev/null 2>&1 || started+=(controller)
  echo "${started[*]}" >"$SIM/started-daemons"
fi
bash hack/ovn/up.sh 8>&-

pairs=()
for ((i = 0; i < VFS; i++)); do
  vf=simvf$i rep=simrep$i
  if ! ip link show "$vf" >/dev/null 2>&1 || ! ip link show "$rep" >/dev/null 2>&1; then
    ip link del "$vf" 2>/dev/null || true
    ip link del "$rep" 2>/dev/null || true
    ip link add "$vf" type veth peer name "$rep"
  fi
  pairs+=("$vf:$rep")
done

ovn-nbctl --may-exist ls-add "$LS" -- set Logical_Switch "$LS" other_config:subnet="$SUBNET" \
  external_ids:owner=vdpa-k8s-sim

fixture_root=$(sed -n 's/^ *"fixtureRoot": "\(.*\)",$/\1/p' "$SIM/node.json" 2>/dev/null || true)
if [[ -z $fixture_root || ! -d $fixture_root ]]; then
  rm -rf "$SIM"/vdpa-fixture-*
  node_modules/.bin/esbuild hack/sim/fixture.ts --bundle --platform=node --format=esm --target=node20 \
    --packages=external --log-level=warning --outfile="$SIM/fixture.mjs"
  node "$SIM/fixture.mjs" "$LS" "$SUBNET" "${pairs[@]}"
  rm -f "$SIM/fixture.mjs"
fi
echo "sim-up: node up in $SIM (VFs: ${pairs[*]}; logical switch $LS, $SUBNET)"
