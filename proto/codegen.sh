#!/usr/bin/env bash
# Regenerates proto/gen from the .proto sources with Debian's protoc and ts-proto's plugin.
# With --check it generates into a temporary directory and fails when the committed output differs.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)
out=gen
if [[ "${1:-}" == "--check" ]]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
command -v protoc >/dev/null || { echo "codegen: protoc not found; install Debian's protobuf-compiler" >&2; exit 1; }
mkdir -p "$out"
protoc \
  --plugin="$root/node_modules/.bin/protoc-gen-ts_proto" \
  --ts_proto_out="$out" \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,importSuffix=.js,useOptionals=none \
  -I . deviceplugin_v1beta1.proto pluginregistration_v1.proto podresources_v1.proto
if [[ "${1:-}" == "--check" ]]; then
  diff -ru gen "$out" >&2 || { echo "codegen: proto/gen is stale; run npm run codegen and commit it" >&2; exit 1; }
  echo "codegen: proto/gen is up to date"
fi
