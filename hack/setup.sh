#!/usr/bin/env bash
# Prepares a Debian 12 machine for building and testing vdpa-k8s: installs the Debian packages
# the tests use (only the missing ones; non-interactive) and the npm dependencies (npm ci).
# Safe to run again. Needs root for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  protobuf-compiler            # codegen drift check
  iproute2 iputils-ping ethtool kmod
  openvswitch-switch ovn-central ovn-host   # real OVS/OVN for the CNI tests
  containernetworking-plugins  # Go reference plugins: host-local IPAM and the host-device baseline
  hyperfine                    # benchmarks
  podman runc busybox-static   # a real libcni client
  prometheus                   # promtool, for the alert rules
  systemd                      # systemd-analyze verify, for the provisioning boot unit
)

source hack/lib/packages.sh
ensure_packages setup "${PACKAGES[@]}"

if ! command -v node >/dev/null || (( $(node -p 'process.versions.node.split(".")[0]') < 20 )); then
  echo "setup: Node.js 20 or later is required" >&2
  exit 1
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
