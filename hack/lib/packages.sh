# Sourced by the hack/ scripts. ensure_packages TAG PKG…: installs the Debian packages that are
# missing (non-interactive; never touches installed ones) and says so under TAG.
ensure_packages() {
  local tag=$1 missing=() p
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "$tag: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's package scripts may try to start services through init; the scripts start their own.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
